"""The files of a model folder, which is also its Hub repo: one definition for saving, loading
and publishing.

A classifier's folder holds `config.json` (architecture, classes, training record, calibration,
out-of-distribution detector, the SHA-256 of the weights), `model.keras` (loaded with
`safe_mode=True`) and `README.md` (the model card), and once evaluated `metrics.json`,
`history.json` and plots. An ensemble's folder holds `config.json` with `"type": "ensemble"`,
its members by reference, `metrics.json` and its card: no weights of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
CARD_FILE = "README.md"
#: Files besides the model and config that travel with a model folder (metrics, curves, plots).
ARTIFACT_PATTERNS = (METRICS_FILE, HISTORY_FILE, "*.png", "*.md")
#: Everything a model folder publishes (hidden temporary files never match: see `folder_files`).
MODEL_PATTERNS = (CONFIG_FILE, MODEL_FILE, *ARTIFACT_PATTERNS)
#: What an ensemble folder publishes and downloads.
ENSEMBLE_PATTERNS = ("*.json", "*.md", "*.png")


def folder_files(folder: str | os.PathLike, patterns: tuple[str, ...]) -> list[Path]:
    """The files of `folder` matching `patterns`, without hidden (temporary) files."""
    found = {p for pattern in patterns for p in Path(folder).glob(pattern)}
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's config.json, or a ValueError saying why it is not a model or ensemble folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{folder}: not a model or ensemble folder (no {CONFIG_FILE})")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return config


def is_ensemble(config: dict[str, Any]) -> bool:
    return config.get("type") == "ensemble"


def read_json(path: Path) -> Any:
    """A JSON file's content, or None if there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

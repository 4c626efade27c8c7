"""The files of a model folder, which is also its Hub repo: one definition for saving, loading
and publishing.

A classifier's folder is Keras's own unzipped layout, so plain `keras.saving.load_model(folder)`
and `keras.saving.load_model("hf://owner/repo")` read it (without `cifar_cnn` when no custom
layer is left: true of every shipped model): `config.json` holds the Keras model
definition (`module`, `class_name`, `config`, ...) and, beside it under keys that never clash,
ours (architecture, classes, training record, calibration, out-of-distribution detector, the
SHA-256 of the weights); `metadata.json` and `model.weights.h5` are Keras's. `README.md` is the
model card; once evaluated the folder also holds `metrics.json`, `history.json` and plots.
Folders and repos saved before this layout hold a zipped `model.keras` and our config alone;
they still load. An ensemble's folder holds `config.json` with `"type": "ensemble"`,
its members by reference, `metrics.json` and its card: no weights of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
KERAS_METADATA_FILE = "metadata.json"
#: The zipped Keras model of the layout before this one (read, never written).
LEGACY_MODEL_FILE = "model.keras"
#: The keys of a serialized Keras model in config.json; ours are every other key.
KERAS_CONFIG_KEYS = (
    "module",
    "class_name",
    "config",
    "registered_name",
    "build_config",
    "compile_config",
)
#: An out-of-distribution detector's files (`cifar_cnn.trust.ood.KnnDetector`): its bank of
#: CIFAR-10 training pictures' features, and the ImageNet network that computes them.
OOD_BANK_FILE = "ood_bank.npy"
OOD_FEATURES_FILE = "ood_features.weights.h5"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
CARD_FILE = "README.md"
#: Files besides the model and config that travel with a model folder (metrics, curves, plots).
ARTIFACT_PATTERNS = (METRICS_FILE, HISTORY_FILE, "*.png", "*.md", OOD_BANK_FILE, OOD_FEATURES_FILE)
#: Everything a model folder publishes (hidden temporary files never match: see `folder_files`).
MODEL_PATTERNS = (
    CONFIG_FILE,
    KERAS_METADATA_FILE,
    WEIGHTS_FILE,
    LEGACY_MODEL_FILE,
    *ARTIFACT_PATTERNS,
)
#: What an ensemble folder publishes and downloads.
ENSEMBLE_PATTERNS = ("*.json", "*.md", "*.png", OOD_BANK_FILE, OOD_FEATURES_FILE)


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


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """config.json's content as (ours, the serialized Keras model); the latter empty in the
    legacy layout."""
    ours = {k: v for k, v in config.items() if k not in KERAS_CONFIG_KEYS}
    return ours, {k: v for k, v in config.items() if k in KERAS_CONFIG_KEYS}


def merge_config(ours: dict[str, Any], keras_model: dict[str, Any]) -> dict[str, Any]:
    """One config.json for both loaders: the serialized Keras model first, then ours."""
    clash = sorted(set(ours) & set(KERAS_CONFIG_KEYS))
    if clash:
        raise ValueError(f"config keys {clash} are reserved for the Keras model definition")
    return {**keras_model, **ours}


def weights_digest(config: dict[str, Any]) -> str | None:
    """The SHA-256 of the weights a config records: `weights_sha256` (model.weights.h5), or the
    legacy layout's `model_sha256` (model.keras); None if it records neither."""
    return config.get("weights_sha256") or config.get("model_sha256")


def weights_file(folder: str | os.PathLike) -> Path | None:
    """The folder's weights: `model.weights.h5`, else a legacy `model.keras`, else None."""
    for name in (WEIGHTS_FILE, LEGACY_MODEL_FILE):
        if (path := Path(folder) / name).is_file():
            return path
    return None


def model_folders(root: str | os.PathLike) -> list[Path]:
    """The classifier folders directly under `root` (each with weights), sorted by name."""
    root = Path(root)
    folders = root.iterdir() if root.is_dir() else []
    return sorted(f for f in folders if f.is_dir() and weights_file(f) is not None)


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

"""This browser session's predictions: kept in the session's state, never on the server's disk."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cifar_cnn.trust.ood import OUTLIER_WARNING

HISTORY_COLUMNS = ["time", "file", "model", "label", "confidence", "warning"]
HISTORY_LIMIT = 50


def add_to_history(
    history: list[dict[str, Any]] | None,
    view: np.ndarray,
    model: str,
    top: dict[str, float],
    flagged: bool = False,
    file: str = "",
) -> list[dict[str, Any]]:
    """This browser session's predictions, newest first (kept in the session, never on disk).
    `model` names the model, or "ensemble" for a vote; `file`, the picture's name."""
    entry = {
        "time": time.strftime("%H:%M:%S"),
        "file": file,
        "model": model,
        "label": next(iter(top)),
        "confidence": round(next(iter(top.values())), 4),
        # The out-of-distribution check flagged the picture.
        "warning": OUTLIER_WARNING if flagged else "",
        # The 32x32 view, not the enlarged one: 3 KB a row keeps sessions small on the server.
        # A copy: a slice would keep the whole enlarged picture (192 KB) alive in the session.
        "thumbnail": view[:: view.shape[0] // 32, :: view.shape[1] // 32][:32, :32].copy(),
    }
    return [entry, *(history or [])][:HISTORY_LIMIT]


def history_rows(history: list[dict[str, Any]] | None) -> list[list[Any]]:
    """The history as table rows (HISTORY_COLUMNS), newest first."""
    return [[entry.get(column, "") for column in HISTORY_COLUMNS] for entry in history or []]

"""Crash-safe file writes: write a temporary sibling, then rename it over the target."""

from __future__ import annotations

import os
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A hidden name next to `path` that keeps its suffixes (Keras checks them)."""
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that readers see the old or the new file, never a partial one."""
    path = Path(path)
    tmp = temporary_sibling(path)
    tmp.write_text(text)
    os.replace(tmp, path)

"""The app's output files: images handed to Gradio as atomically written PNGs, CSV exports, in a
temporary folder that prunes itself."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cifar_cnn.atomic import atomic_write_bytes


def image_file(image: np.ndarray, folder: str | os.PathLike) -> str:
    """`image` saved as a PNG in `folder`, named by its content and written atomically: the
    path to hand a UI instead of the array.

    Gradio 6 writes an array output into its cache in place (`Path.write_bytes` on a name
    derived from the content), so when concurrent requests produce the same picture, one
    client can download the file while another request is rewriting it: truncated downloads
    under load. A path output goes through Gradio's atomic copy instead, and a file here is
    complete from the moment its name exists.
    """
    data = _png_bytes(image)
    return _store(data, Path(folder) / _png_name(data))


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_name(data: bytes) -> str:
    return f"{_digest(data, 32)}.png"


def _digest(data: bytes, length: int) -> str:
    return hashlib.sha256(data).hexdigest()[:length]


def _store(data: bytes, path: Path) -> str:
    """Write `data` to `path` (a name derived from its content) unless it is there already."""
    try:
        os.utime(path)  # reused: fresh again, so OutputFolder's pruning keeps it
    except FileNotFoundError:
        atomic_write_bytes(path, data)
    return str(path)


class OutputFolder:
    """A temporary folder for a server's output files (images, CSV exports) that does not grow
    for ever.

    Files not written or reused for `max_age_seconds` are removed (leftover temporaries of
    interrupted writes too); the check runs when a file is saved, at most once every
    `prune_every_seconds`. The UI hands Gradio a path, which Gradio copies into its own cache
    before answering, so an hour is far longer than a file is needed here.

    >>> outputs = OutputFolder()
    >>> path = outputs.image_file(np.zeros((32, 32, 3), np.uint8))
    >>> csv_path = outputs.csv_file([["cat.png", "cat"]], ["file", "label"])
    """

    def __init__(
        self,
        max_age_seconds: float = 3600,
        prune_every_seconds: float = 60,
        folder: str | os.PathLike | None = None,
    ):
        self.path = Path(folder or tempfile.mkdtemp(prefix="cifar-app-outputs-"))
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_age_seconds = max_age_seconds
        self.prune_every_seconds = prune_every_seconds
        self._last_prune = time.monotonic()
        self._lock = threading.RLock()

    def image_file(self, image: np.ndarray) -> str:
        """`image` as a PNG in this folder (see `image_file`)."""
        data = _png_bytes(image)
        return self._save(data, _png_name(data))

    def csv_file(self, rows: list[list[Any]], columns: list[str]) -> str:
        """A table as CSV in this folder, named `predictions-<content hash>.csv`."""
        data = _csv_text(rows, columns).encode("utf-8")
        return self._save(data, f"predictions-{_digest(data, 12)}.csv")

    def _save(self, data: bytes, name: str) -> str:
        with self._lock:  # a file being reused is never the one a prune removes
            self.prune_if_due()
            return _store(data, self.path / name)

    def prune_if_due(self) -> int:
        """Remove the files older than `max_age_seconds` if a check is due; how many went."""
        with self._lock:
            if time.monotonic() - self._last_prune < self.prune_every_seconds:
                return 0
            self._last_prune = time.monotonic()
            oldest, removed = time.time() - self.max_age_seconds, 0
            for path in self.path.iterdir():
                try:
                    if path.is_file() and path.stat().st_mtime < oldest:
                        path.unlink(missing_ok=True)
                        removed += 1
                except OSError:  # gone meanwhile, or not ours to remove: not worth a failure
                    continue
            return removed


def _csv_text(rows: list[list[Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()

"""Crash-safe training checkpoints: resume after `kill -9` from the last finished epoch.

A run directory holds:

    checkpoints/epoch-0007/   model.weights.h5: Keras's weights file, which also holds every
                              optimizer variable, including its step counter, so momentum and
                              the learning-rate schedule continue where they stopped
    best.weights.h5           the weights with the best validation accuracy so far
    state.json                epoch reached, history, early-stopping state, the live checkpoint

Each checkpoint directory is written completely before `state.json` is atomically replaced to point
at it, so a crash at any instant leaves the previous consistent state behind.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

from cifar_cnn.atomic import atomic_path, atomic_write_text

STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"


@dataclass
class TrainingState:
    """What a run has done so far; `epoch` counts finished epochs."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    checkpoint: str | None = None
    finished: bool = False
    recipe: dict[str, Any] | None = None  # what the run was started with

    @classmethod
    def load(cls, run_dir: Path) -> TrainingState | None:
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, run_dir: Path) -> None:
        atomic_write_text(Path(run_dir) / STATE_FILE, json.dumps(asdict(self), indent=1))

    def out_of_patience(self, patience: int) -> bool:
        """Whether early stopping ends the run: `patience` epochs (0: off) without a better
        val_accuracy."""
        return patience > 0 and self.epoch - self.best_epoch >= patience


def atomic_save_weights(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save_weights(tmp)


def save_checkpoint(run_dir: Path, model: keras.Model, state: TrainingState) -> None:
    """Write the model and optimizer for `state.epoch`, then commit `state` pointing at them."""
    run_dir = Path(run_dir)
    name = f"epoch-{state.epoch:04d}"
    final = run_dir / "checkpoints" / name
    tmp = run_dir / "checkpoints" / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_weights(tmp / "model.weights.h5")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    previous = state.checkpoint
    state.checkpoint = f"checkpoints/{name}"
    state.save(run_dir)
    if previous and previous != state.checkpoint:
        shutil.rmtree(run_dir / previous, ignore_errors=True)


def restore_checkpoint(run_dir: Path, model: keras.Model, state: TrainingState) -> None:
    """Load the weights and optimizer state of `state.checkpoint` into `model`, which must be
    compiled as it was when the checkpoint was written (same phase, same optimizer)."""
    model.load_weights(Path(run_dir) / state.checkpoint / "model.weights.h5")

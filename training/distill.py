"""Distillation: training a model toward a teacher's probabilities as well as the labels.

    cifar-train --model resnet_fast --teacher models/ensemble --teacher-weight 0.5 \\
        --data ../shared/data/cifar-10-python.tar.gz

Each training image's target becomes `(1 - w) * one_hot(label) + w * teacher(image)`, where
`teacher(image)` is the teacher's calibrated probabilities (an ensemble's soft vote) averaged over
the image and its mirror. They are computed once, on the un-augmented images, before the first
epoch, and kept in the run folder so a resumed run reads them back. The random crops and flips
of training then move the picture a few pixels from where the teacher saw it; the flip average
makes the targets the same for both mirror images.

The teacher must not have trained on the run's validation images, or the student's validation
accuracy (which chooses its best epoch, and is how it is compared with the teacher) would
flatter it: `distillation_targets` refuses such a teacher.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifar_cnn.atomic import atomic_write_bytes, atomic_write_text
from cifar_cnn.data.cifar10 import Cifar10, validation_mask
from cifar_cnn.ensemble import CifarEnsemble, load_pretrained
from cifar_cnn.hub.reference import display_name
from cifar_cnn.models import Recipe
from training.evaluate import held_out_mask

#: The teacher's probabilities for a run's training images, and what they were computed for, in
#: its run folder.
TARGETS_FILE = "teacher_probabilities.npy"
TARGETS_KEY_FILE = "teacher_probabilities.json"


@dataclass
class Teacher:
    """A teacher's probabilities for a run's training images (N, 10), and its record for the
    model's card: `{"source", "name", "validation_accuracy", "validation_images"}`."""

    probabilities: np.ndarray
    record: dict[str, Any]


def distillation_targets(
    recipe: Recipe, data: Cifar10, x_train: np.ndarray, run_dir: Path
) -> Teacher:
    """The teacher's calibrated probabilities (flip TTA) for `x_train`, the recipe's training
    images as `split_validation` gives them; read back from `run_dir` when they were computed
    there for the same teacher, images and split."""
    if not 0.0 <= recipe.teacher_weight <= 1.0:
        raise ValueError(f"teacher weight must be in [0, 1], got {recipe.teacher_weight}")
    key = {
        "teacher": recipe.teacher,
        "validation_fraction": recipe.validation_fraction,
        "split_seed": recipe.split_seed,
        "training_images_sha256": hashlib.sha256(x_train.tobytes()).hexdigest(),
    }
    cached, cached_key = Path(run_dir) / TARGETS_FILE, Path(run_dir) / TARGETS_KEY_FILE
    if cached.is_file() and cached_key.is_file():
        saved = json.loads(cached_key.read_text())
        if saved.get("key") == key:
            print(f"Teacher's probabilities read back from {cached.name}")
            return Teacher(np.load(cached, allow_pickle=False), saved["record"])
    teacher = load_pretrained(recipe.teacher)
    members = list(teacher.members) if isinstance(teacher, CifarEnsemble) else [teacher]
    val_mask = validation_mask(data.y_train, recipe.validation_fraction, recipe.split_seed)
    seen = val_mask & ~held_out_mask(members, data)
    if seen.any():
        raise ValueError(
            f"the teacher trained on {int(seen.sum())} of this run's {int(val_mask.sum())} "
            "validation images, so they could not judge the student; train with the teacher's "
            "validation split (--split-seed, --validation-fraction)"
        )
    started = time.time()
    probabilities = teacher.predict(x_train, flip_tta=True).astype(np.float32)
    on_validation = teacher.predict(data.x_train[val_mask], flip_tta=True).argmax(axis=1)
    record = {
        "source": recipe.teacher,
        "name": display_name(recipe.teacher),
        "validation_accuracy": float(np.mean(on_validation == data.y_train[val_mask])),
        "validation_images": int(val_mask.sum()),
    }
    print(
        f"Teacher {record['name']}: probabilities for {len(x_train)} training images in "
        f"{(time.time() - started) / 60:.1f} min; it scores {record['validation_accuracy']:.4f} "
        f"(flip TTA) on this run's {record['validation_images']} validation images"
    )
    buffer = io.BytesIO()
    np.save(buffer, probabilities, allow_pickle=False)
    atomic_write_bytes(cached, buffer.getvalue())
    atomic_write_text(cached_key, json.dumps({"key": key, "record": record}, indent=2))
    return Teacher(probabilities, record)

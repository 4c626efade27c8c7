"""Training recipes: one small dataclass per model, every field overridable from the command line.

>>> from training.recipes import get_recipe
>>> recipe = get_recipe("resnet_fast", epochs=2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recipe:
    """Everything that decides a training run, in one place."""

    model: str
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adam"  # "adam", "adamw" or "sgd" (Nesterov)
    learning_rate: float = 1e-3
    momentum: float = 0.9
    # Decoupled, on every trainable variable (BatchNorm biases too, as airbench does): each step
    # multiplies them by (1 - lr * weight_decay).
    weight_decay: float = 0.0
    schedule: str = "cosine_restarts"  # "one_cycle", "cosine_restarts" or "constant"
    restart_epochs: int = 10  # first period of cosine_restarts; each next one doubles
    label_smoothing: float = 0.0
    augmentation: str = "original"  # see cifar_cnn.augmentation
    validation_fraction: float = 0.1
    patience: int = 0  # early stopping on val_accuracy; 0 = off
    # Lookahead on an EMA of the weights (training.lookahead), airbench's optimizer wrapper.
    lookahead: bool = False
    flip_tta: bool = True  # evaluate with horizontal-flip test-time augmentation as well
    seed: int = 0
    # "auto": float16 on a GPU, float32 on a CPU; or "off", "bf16", "fp16". Only the arithmetic
    # changes: weights stay and are saved in float32.
    mixed_precision: str = "auto"
    # Transfer learning: the first `head_epochs` train only the head, backbone frozen; the rest
    # fine-tune everything at `fine_tune_learning_rate`, recompiled.
    head_epochs: int = 0
    fine_tune_learning_rate: float = 1e-4
    model_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    # The original design's recipe: Adam, its augmentation, early stopping, cosine restarts.
    "seed_cnn": Recipe(
        model="seed_cnn",
        epochs=40,
        batch_size=128,
        optimizer="adam",
        learning_rate=1e-3,
        schedule="cosine_restarts",
        restart_epochs=10,
        augmentation="original",
        patience=10,
    ),
    # airbench94's recipe, simplified: big batch, Nesterov SGD, one-cycle, label smoothing,
    # strong decoupled weight decay, Lookahead on an EMA of the weights, flip + pad-and-crop
    # shifts of up to 2 px, BatchNorm biases at 64x the LR and epsilon 1e-12, flip TTA.
    # 4% validation (2,000 images) leaves 48,000 to train on; 22 epochs took 80.7 (Intel Xeon)
    # and 89.7 minutes (AMD EPYC) on 2 cores: close to the 90-minute limit on slower machines.
    "resnet_fast": Recipe(
        model="resnet_fast",
        epochs=22,
        batch_size=1024,
        optimizer="sgd",
        learning_rate=1.5,
        momentum=0.85,
        weight_decay=0.009,
        schedule="one_cycle",
        label_smoothing=0.2,
        augmentation="flip_crop",
        validation_fraction=0.04,
        lookahead=True,
        model_options={"bias_lr_scale": 64, "bn_epsilon": 1e-12},
    ),
    # ImageNet MobileNet-0.25: head first on a frozen backbone, then fine-tune at a low LR.
    "mobilenet_transfer": Recipe(
        model="mobilenet_transfer",
        epochs=12,
        head_epochs=2,
        batch_size=128,
        optimizer="adam",
        learning_rate=1e-3,
        fine_tune_learning_rate=3e-4,
        schedule="one_cycle",
        label_smoothing=0.1,
        augmentation="flip_translate",
        model_options={"input_size": 128},
    ),
}


def get_recipe(model: str, **overrides: Any) -> Recipe:
    """The default recipe for `model` with `overrides` applied (unknown fields raise ValueError)."""
    if model not in RECIPES:
        raise ValueError(
            f"no recipe for model {model!r}; choose one of {', '.join(sorted(RECIPES))}"
        )
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
    return dataclasses.replace(RECIPES[model], **overrides)

"""The model registry: one `ModelSpec` per model, holding everything the project knows about it.

>>> from cifar_cnn.models import create_model, get_spec, list_models
>>> list_models()
['mobilenet_transfer', 'resnet_fast', 'seed_cnn']
>>> model = create_model("seed_cnn")                 # an untrained Keras model
>>> get_spec("resnet_fast").recipe.epochs             # how it is trained
22

A spec is the single home of a model's facts, timm-style: its builder, its training recipe, the
text of its model card, and where its trained weights can be found (the folder shipped in this
repository, or a Hub repo). Training, cards and the command lines read them from here and have no
per-name special cases. Each architecture module registers its own spec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from cifar_cnn.data.cifar10 import NUM_CLASSES, REPO_ROOT

#: Where this repository ships trained models, one folder per registered name.
SHIPPED_MODELS = REPO_ROOT / "models"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a training run, in one place; every field is a `cifar-train` flag."""

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
    augmentation: str = "original"  # see cifar_cnn.data.augmentation
    validation_fraction: float = 0.1
    patience: int = 0  # early stopping on val_accuracy; 0 = off
    # Lookahead on an EMA of the weights (training.lookahead), airbench's optimizer wrapper.
    lookahead: bool = False
    seed: int = 0  # initial weights, shuffling and augmentation
    # Which training images are held out for validation (and how k-fold folds fall), apart from
    # `seed`: runs that differ only in `seed` (an ensemble's members) validate on the same images.
    split_seed: int = 0
    # "auto": float16 on a GPU, float32 on a CPU; or "off", "bf16", "fp16". Only the arithmetic
    # changes: weights stay and are saved in float32.
    mixed_precision: str = "auto"
    # Transfer learning: the first `head_epochs` train only the head, backbone frozen; the rest
    # fine-tune everything at `fine_tune_learning_rate`, recompiled.
    head_epochs: int = 0
    fine_tune_learning_rate: float = 1e-4
    # Distillation (training.distill): with a `teacher` (a model or ensemble folder, or Hub id),
    # each training image's target is `(1 - teacher_weight) * one-hot label + teacher_weight *
    # the teacher's probabilities`; label smoothing then applies to that mix.
    teacher: str = ""
    teacher_weight: float = 0.5
    # Passed to the model's builder (`--model-option key=value`).
    model_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> Recipe:
        """This recipe with `overrides` applied; unknown fields raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Args:
        name: the registry name (also the shipped folder's name and the Keras model's name).
        build: `build(num_classes=10, **options) -> keras.Model`, untrained.
        recipe: how the shipped model was trained; `cifar-train` starts from it.
        title, description: the model card's heading and first paragraph.
        claim: the original design's accuracy claim for this kind of model, shown on the card.
        hub_repo: the Hub repo holding the published weights ("owner/name@revision"), if any.
        citations: the works the model builds on, as its card cites them.
        fitted_options: options a builder takes from the training images (such as resnet_fast's
            whitening filters): `fitted_options(x_train) -> dict`.
    """

    name: str
    build: Callable[..., keras.Model]
    recipe: Recipe
    title: str
    description: str
    claim: str | None = None
    hub_repo: str | None = None
    citations: tuple[str, ...] = ()
    fitted_options: Callable[[np.ndarray], dict[str, Any]] | None = None

    @property
    def shipped_folder(self):
        """This repository's folder of the trained model (it may not exist in an installed wheel)."""
        return SHIPPED_MODELS / self.name


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry (each architecture module registers its own)."""
    if spec.name != spec.recipe.model:
        raise ValueError(f"spec {spec.name!r} carries a recipe for {spec.recipe.model!r}")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Registered model names."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec registered as `name`, or a ValueError listing the choices."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int = NUM_CLASSES, **options: Any) -> keras.Model:
    """An untrained model by registry name; `options` go to that model's builder."""
    return get_spec(name).build(num_classes=num_classes, **options)


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """The registered recipe of `name` with `overrides` applied (unknown fields raise)."""
    return get_spec(name).recipe.replace(**overrides)

"""Which models the app serves: folders or Hub repos from --models or $CIFAR_MODELS, else the
shipped models/ folders; a source that fails to load is kept with its reason, and the rest serve.

>>> from webapp.serving import load_models, model_sources
>>> served = load_models(model_sources())          # $CIFAR_MODELS, else models/*
>>> served.get("resnet_fast")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.hub.layout import model_folders
from cifar_cnn.hub.reference import display_name
from cifar_cnn.models.registry import SHIPPED_MODELS

MODELS_ENV = "CIFAR_MODELS"
FLAGSHIP = "resnet_fast"


@dataclass(frozen=True)
class LoadFailure:
    """A model source that did not load. `error_type` (such as "FileNotFoundError") is safe to
    show anyone; `reason` can name server paths, so it belongs in the server's log only."""

    source: str
    error_type: str
    reason: str


@dataclass
class ServedModels:
    """The classifiers being served and the sources that failed to load, by display name."""

    classifiers: dict[str, CifarClassifier] = field(default_factory=dict)
    failures: dict[str, LoadFailure] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.classifiers)

    def get(self, name: str) -> CifarClassifier:
        if name not in self.classifiers:
            raise ValueError(f"unknown model {name!r}; loaded: {', '.join(self.names) or 'none'}")
        return self.classifiers[name]


def model_sources(setting: str | None = None) -> list[str]:
    """Sources to serve: `setting` (comma-separated folders or Hub repo ids, each with optional
    @revision), else $CIFAR_MODELS, else every shipped folder in models/ (flagship first)."""
    setting = setting if setting is not None else os.environ.get(MODELS_ENV, "")
    sources = [s.strip() for s in setting.split(",") if s.strip()]
    if sources:
        return sources
    shipped = model_folders(SHIPPED_MODELS)
    shipped.sort(key=lambda p: p.name != FLAGSHIP)
    return [str(p) for p in shipped]


def load_models(sources: list[str] | None = None) -> ServedModels:
    """Load each source with `CifarClassifier.from_pretrained`; failures are kept with their
    reason (and the rest still serve)."""
    served = ServedModels()
    for source in sources if sources is not None else model_sources():
        name = display_name(source)
        try:
            served.classifiers[name] = CifarClassifier.from_pretrained(source)
        except Exception as error:  # noqa: BLE001 - any failure is reported, never fatal
            reason = f"{type(error).__name__}: {error}"
            served.failures[name] = LoadFailure(source, type(error).__name__, reason)
    return served

"""Which models the app serves: folders or Hub repos from --models or $CIFAR_MODELS, else the
shipped models/ folders; a source that fails to load is kept with its reason, and the rest serve.

>>> from webapp.serving import load_models, model_sources
>>> served = load_models(model_sources())          # $CIFAR_MODELS, else models/*
>>> served.get("resnet_fast")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.ensemble import CifarEnsemble
from cifar_cnn.hub.layout import CONFIG_FILE, model_folders, read_config, weights_digest
from cifar_cnn.hub.reference import display_name
from cifar_cnn.models.registry import SHIPPED_MODELS
from cifar_cnn.trust.ood import detector_of
from cifar_cnn.voting import validation_weights

MODELS_ENV = "CIFAR_MODELS"
FLAGSHIP = "resnet_fast"
#: The shipped ensemble: its members, weights and out-of-distribution detector serve the Ensemble
#: tab whenever all its members are among the models being served.
ENSEMBLE_FOLDER = REPO_ROOT / "models" / "ensemble"


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
    ensemble: CifarEnsemble | None = None  # the served models voting (see `ensemble_of`)

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
            classifier = CifarClassifier.from_pretrained(source)
            detector_of(classifier)  # its out-of-distribution detector, loaded and checked now
            served.classifiers[name] = classifier
        except Exception as error:  # noqa: BLE001 - any failure is reported, never fatal
            reason = f"{type(error).__name__}: {error}"
            served.failures[name] = LoadFailure(source, type(error).__name__, reason)
    served.ensemble = ensemble_of(served.classifiers)
    return served


def ensemble_of(
    classifiers: dict[str, CifarClassifier], folder: Path = ENSEMBLE_FOLDER
) -> CifarEnsemble | None:
    """The served models voting: the shipped ensemble (`folder`: its members, weights and own
    out-of-distribution detector) when all its members are served, with the very same weights,
    else every served model, weighted by its recorded validation accuracy, flagging a picture
    when most members' checks do (also when the shipped ensemble's files are broken: said in the
    server's log)."""
    if not classifiers:
        return None
    try:
        shipped = _shipped_ensemble(classifiers, folder)
        if shipped is not None:
            detector_of(shipped)  # loaded and checked now, not on a visitor's request
            return shipped
    except (OSError, ValueError, KeyError) as error:
        print(f"The shipped ensemble's detector is not used: {type(error).__name__}: {error}")
    members = list(classifiers.values())
    weights = validation_weights([m.config for m in members])
    return CifarEnsemble(members, weights, list(classifiers))


def _shipped_ensemble(classifiers: dict[str, CifarClassifier], folder: Path):
    if not (folder / CONFIG_FILE).is_file():
        return None
    config = read_config(folder)
    members = config["members"]
    if not {m["name"] for m in members} <= set(classifiers):
        return None
    for member in members:  # the same models, not just the same names
        recorded = weights_digest(read_config(folder / member["source"]))
        if recorded is None or recorded != weights_digest(classifiers[member["name"]].config):
            return None
    ensemble = CifarEnsemble(
        [classifiers[m["name"]] for m in members],
        weights=[m["weight"] for m in members],
        names=[m["name"] for m in members],
    )
    ensemble.config = {k: v for k, v in config.items() if k == "ood_detector"}
    ensemble.source_dir = folder
    return ensemble

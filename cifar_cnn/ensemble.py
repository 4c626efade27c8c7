"""`CifarEnsemble`: several classifiers voting, softly (averaged probabilities) or by majority.

>>> from cifar_cnn import CifarEnsemble
>>> ensemble = CifarEnsemble.from_pretrained("models/ensemble")   # members load by reference
>>> ensemble.predict(images)                 # (N, 10) weighted mean of member probabilities
>>> ensemble.hard_vote(images)               # (N,) majority labels
>>> ensemble.agreement(images)               # how often the members agree
>>> ensemble.save_pretrained("/tmp/my-ensemble")   # loads back from anywhere

The voting rules are `cifar_cnn.voting`'s. An ensemble folder holds `config.json`
(`{"type": "ensemble", "members": [...], "voting": ...}`) with each member given as a folder
relative to the ensemble folder or a Hub repo id pinned with `@revision`, plus its own model card
and metrics. It holds no weights of its own, except members saved inside it (`members/NAME/`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cifar_cnn.atomic import atomic_write_text
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.images import ImageLike, to_model_input
from cifar_cnn.hub.download import download_snapshot
from cifar_cnn.hub.layout import (
    CARD_FILE,
    CONFIG_FILE,
    ENSEMBLE_PATTERNS,
    METRICS_FILE,
    is_ensemble,
    read_config,
    read_json,
)
from cifar_cnn.hub.reference import is_hub_reference
from cifar_cnn.models import list_models
from cifar_cnn.report.model_card import render_ensemble_card
from cifar_cnn.trust.ood import (
    DETECTOR_FILES,
    CheckedPrediction,
    check_image,
    verify_detector_files,
)
from cifar_cnn.video import VideoClassification, classify_video
from cifar_cnn.voting import TIE_BREAK, agreement, checked_weights, hard_vote, soft_vote

#: Where `save_pretrained` puts members that are not already reachable from the new folder.
MEMBERS_DIR = "members"


def distinct_names(names: list[str]) -> list[str]:
    """Names made distinct in order: two members named "resnet_fast" become "resnet_fast" and
    "resnet_fast-2" (or "-3"... where that name is taken)."""
    taken: set[str] = set()
    distinct = []
    for name in names:
        unique, count = name, 1
        while unique in taken:
            count += 1
            unique = f"{name}-{count}"
        taken.add(unique)
        distinct.append(unique)
    return distinct


class CifarEnsemble:
    """Classifiers that vote. `names` label the members (default: their architectures);
    `sources` say where each was loaded from (a folder or "owner/name@revision")."""

    def __init__(
        self,
        members: list[CifarClassifier],
        weights: list[float] | None = None,
        names: list[str] | None = None,
        voting: str = "soft",
        sources: list[str] | None = None,
    ):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if voting not in ("soft", "hard"):
            raise ValueError(f"voting must be 'soft' or 'hard', got {voting!r}")
        class_names = {m.class_names for m in members}
        if len(class_names) != 1:
            raise ValueError("ensemble members must share the same class names")
        self.members = members
        self.weights = checked_weights(weights, len(members))
        self.names = names or distinct_names([m.config["architecture"] for m in members])
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"member names must be distinct, got {self.names}")
        self.voting = voting
        self.sources = sources
        self.class_names = members[0].class_names
        self.metrics: dict[str, Any] | None = None
        self.config: dict[str, Any] = {}  # the loaded config.json's other keys (OOD detector...)
        self.source_dir: Path | None = None  # the folder it was loaded from
        # Which members `from_pretrained` downloaded from the Hub (their sources are repo ids).
        self.from_hub = [False] * len(members)

    def member_probabilities(self, images: ImageLike | list[ImageLike], **kwargs) -> np.ndarray:
        """(M, N, C): each member's (calibrated) probabilities for a batch."""
        batch, _ = to_model_input(images)
        return np.stack([member.predict(batch, **kwargs) for member in self.members])

    def predict(self, images: ImageLike | list[ImageLike], **kwargs) -> np.ndarray:
        """Soft-vote probabilities: (10,) for one image, (N, 10) for a batch."""
        _, single = to_model_input(images)
        probabilities = soft_vote(self.member_probabilities(images, **kwargs), self.weights)
        return probabilities[0] if single else probabilities

    def hard_vote(self, images: ImageLike | list[ImageLike], **kwargs) -> np.ndarray:
        return hard_vote(self.member_probabilities(images, **kwargs), self.weights)

    def agreement(self, images: ImageLike | list[ImageLike], **kwargs) -> dict[str, Any]:
        return agreement(self.member_probabilities(images, **kwargs))

    def check(self, image: ImageLike, top_k: int = 3) -> CheckedPrediction:
        """The soft vote's top classes for one picture, and whether it may not be one of the ten
        classes, and why (the ensemble's own fitted detector, else most members' checks)."""
        return check_image(self, image, top_k)

    def classify_video(
        self, path: str | os.PathLike, every: int = 1, **options: Any
    ) -> VideoClassification:
        """Classify every `every`-th frame of a video by soft vote; a frame is flagged by the
        ensemble's own out-of-distribution detector, or, without one, when most members' checks
        flag it (see `cifar_cnn.video`)."""
        return classify_video(self, path, every, **options)

    # ------------------------------------------------------------------ saving and loading

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write the ensemble's config, metrics and card to `folder`, so that it loads back from
        there: a member already reachable from `folder` (by its relative path, as in this
        repository's models/ensemble) or pinned on the Hub stays a reference; any other member
        is saved inside, under `members/NAME/`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sources = [
            self._source_from(folder, name, member, source, from_hub)
            for name, member, source, from_hub in zip(
                self.names,
                self.members,
                self.sources or [None] * len(self.members),
                self.from_hub,
                strict=True,
            )
        ]
        config = {
            **self.config,
            "type": "ensemble",
            "class_names": list(self.class_names),
            "voting": self.voting,
            "tie_break": TIE_BREAK,
            "members": [
                {"name": name, "source": source, "weight": float(weight)}
                for name, source, weight in zip(self.names, sources, self.weights, strict=True)
            ],
        }
        if self.source_dir is not None and self.source_dir.resolve() != folder.resolve():
            for name in DETECTOR_FILES:  # the fitted detector's files travel with its config
                if (self.source_dir / name).is_file():
                    shutil.copy2(self.source_dir / name, folder / name)
        atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2))
        if self.metrics is not None:
            atomic_write_text(folder / METRICS_FILE, json.dumps(self.metrics, indent=2))
        atomic_write_text(folder / CARD_FILE, str(render_ensemble_card(config, self.metrics)))

    @staticmethod
    def _source_from(
        folder: Path, name: str, member: CifarClassifier, source: str | None, from_hub: bool
    ) -> str:
        """How `folder` refers to `member`: the repo id it was downloaded by, its folder's path
        if that still reaches it from `folder`, else a copy saved under members/NAME/."""
        if from_hub and source is not None:
            return source  # "owner/name@revision" loads the same from anywhere
        loaded_from = member.source_dir.resolve() if member.source_dir else None
        if source is not None and (folder / source).resolve() == loaded_from:
            return source
        relative = Path(MEMBERS_DIR) / name
        if (folder / relative).resolve() != loaded_from:
            member.save_pretrained(folder / relative)
        return relative.as_posix()

    @classmethod
    def from_pretrained(cls, folder_or_repo: str | os.PathLike, **hub_kwargs) -> CifarEnsemble:
        """Load an ensemble folder (or Hub repo, "owner/name@revision") and each member it
        references; `hub_kwargs` (`cache_dir`, `token`, ...) apply to every download."""
        folder = Path(folder_or_repo)
        if not folder.is_dir():
            folder = download_snapshot(str(folder_or_repo), ENSEMBLE_PATTERNS, **hub_kwargs)
        config = read_config(folder)
        if not is_ensemble(config):
            raise ValueError(
                f"{folder / CONFIG_FILE}: not an ensemble config (type is not 'ensemble')"
            )
        # A revision names the ensemble's own; each member is pinned by its own "@revision".
        member_kwargs = {k: v for k, v in hub_kwargs.items() if k != "revision"}
        members, sources, from_hub = [], [], []
        for member in config["members"]:
            source = member["source"]
            local = folder / source
            from_hub.append(not local.is_dir())
            if local.is_dir():
                members.append(CifarClassifier.from_pretrained(local.resolve()))
            elif is_hub_reference(source):
                # A Hub repo id, pinned with @revision: same cache, token and offline mode.
                members.append(CifarClassifier.from_pretrained(source, **member_kwargs))
            else:
                raise ValueError(
                    f"ensemble member {member['name']}: no folder {source} next to the ensemble "
                    f"config (members are folders relative to it, or owner/name@revision)"
                )
            sources.append(source)
        verify_detector_files(folder, config.get("ood_detector"))
        ensemble = cls(
            members,
            weights=[m["weight"] for m in config["members"]],
            names=[m["name"] for m in config["members"]],
            voting=config.get("voting", "soft"),
            sources=sources,
        )
        ensemble.from_hub = from_hub
        ensemble.source_dir = folder
        ensemble.config = {
            k: v
            for k, v in config.items()
            if k not in ("type", "class_names", "voting", "tie_break", "members")
        }
        ensemble.metrics = read_json(folder / METRICS_FILE)
        return ensemble


def load_pretrained(
    reference: str | os.PathLike, **hub_kwargs: Any
) -> CifarClassifier | CifarEnsemble:
    """Whichever a folder, Hub repo id ("owner/name@revision") or registry name holds: a
    `CifarClassifier`, or a `CifarEnsemble` when its config.json says so.

    >>> load_pretrained("models/ensemble")        # CifarEnsemble
    >>> load_pretrained("me/cifar10-resnet-fast@v2")   # CifarClassifier

    From the Hub, config.json comes first (one small download) and the loader it names fetches the
    rest; `hub_kwargs` are as for `from_pretrained`.
    """
    folder = Path(reference)
    if not folder.is_dir():
        if not is_hub_reference(reference) or str(reference) in list_models():
            # A registry name, or neither: the classifier's loader says which.
            return CifarClassifier.from_pretrained(reference, **hub_kwargs)
        folder = download_snapshot(str(reference), (CONFIG_FILE,), **hub_kwargs)
    loader = CifarEnsemble if is_ensemble(read_config(folder)) else CifarClassifier
    return loader.from_pretrained(reference, **hub_kwargs)

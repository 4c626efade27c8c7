"""`CifarClassifier`: a Keras model with its config, loadable from a folder or the Hugging Face Hub.

>>> from cifar_cnn import CifarClassifier
>>> clf = CifarClassifier.from_pretrained("models/resnet_fast")       # or "owner/repo@v2"
>>> clf.classify("examples/test0000_cat.png", top_k=3)
{'cat': 0.87, 'dog': 0.06, 'frog': 0.02}
>>> clf.predict(batch_of_images).shape                                # (N, 10) probabilities
>>> clf.save_pretrained("my-model")                                  # Hub layout
>>> clf.push_to_hub("me/cifar10-resnet-fast")

A saved folder is Keras's own layout plus ours (see `cifar_cnn.hub.layout`), so plain Keras
loads it too, with no `cifar_cnn` import:

>>> keras.saving.load_model("hf://me/cifar10-resnet-fast")  # uint8 in, probabilities out
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import huggingface_hub
import keras
import numpy as np
import tensorflow as tf
from huggingface_hub import ModelHubMixin
from huggingface_hub.errors import LocalEntryNotFoundError

from cifar_cnn import __version__
from cifar_cnn.atomic import atomic_write_text
from cifar_cnn.data.cifar10 import CLASS_NAMES, IMAGE_SHAPE, top_classes
from cifar_cnn.data.images import ImageLike, mirrored, to_model_input
from cifar_cnn.hub.download import download_snapshot, not_cached_error
from cifar_cnn.hub.layout import (
    ARTIFACT_PATTERNS,
    CARD_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    KERAS_METADATA_FILE,
    LEGACY_MODEL_FILE,
    METRICS_FILE,
    MODEL_PATTERNS,
    WEIGHTS_FILE,
    merge_config,
    read_config,
    read_json,
    sha256,
    split_config,
    weights_digest,
    weights_file,
)
from cifar_cnn.hub.reference import is_hub_reference, parse_reference
from cifar_cnn.models import create_model, get_spec, list_models
from cifar_cnn.models.layers import fold_scaled_biases
from cifar_cnn.report.model_card import render_model_card
from cifar_cnn.trust.calibration import apply_temperature
from cifar_cnn.trust.ood import CheckedPrediction, check_image, verify_detector_files
from cifar_cnn.video import VideoClassification, classify_video
from cifar_cnn.voting import mirror_average

#: How many classes `classify` returns unless told.
DEFAULT_TOP_K = 3
RESIZE_RULE = "centre-crop to square, then area (PIL BOX) downscale or bicubic upscale to 32x32"


class CifarClassifier(
    ModelHubMixin,
    library_name="keras",
    pipeline_tag="image-classification",
    license="mit",
    tags=["cifar10", "image-classification", "keras", "cifar_cnn"],
):
    """A CIFAR-10 classifier: a Keras model taking uint8 (N, 32, 32, 3) and returning probabilities.

    Args:
        model: the Keras model.
        config: JSON-serialisable description (architecture, class names, recipe, ...). Missing
            keys are filled in (architecture, class names, the input and output contract).
    """

    def __init__(self, model: keras.Model, config: dict[str, Any] | None = None):
        self.model = model
        self.config = {**self._default_config(model), **(config or {})}
        self.class_names: tuple[str, ...] = tuple(self.config["class_names"])
        self.metrics: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] | None = None
        self.source_dir: Path | None = None
        # Keras's definition of the saved model that config.json holds beside ours (none before
        # saving, or when loaded from the legacy layout).
        self.keras_definition: dict[str, Any] = {}
        self._forward = None

    @classmethod
    def from_architecture(cls, name: str, **options: Any) -> CifarClassifier:
        """A new, untrained classifier from the model registry."""
        return cls(create_model(name, **options), config={"architecture": name})

    @staticmethod
    def _default_config(model: keras.Model) -> dict[str, Any]:
        return {
            "architecture": model.name,
            "class_names": list(CLASS_NAMES),
            "input": {
                "shape": list(IMAGE_SHAPE),
                "dtype": "uint8",
                "color": "RGB",
                "resize": RESIZE_RULE,
                "preprocessing": "inside the model (scaling, normalisation, resizing)",
            },
            "output": "softmax probabilities over class_names",
        }

    # ------------------------------------------------------------------ inference

    @property
    def temperature(self) -> float | None:
        """The calibration temperature fitted on validation data, if any (see trust.calibration)."""
        return (self.config.get("calibration") or {}).get("temperature")

    def predict(
        self,
        images: ImageLike | list[ImageLike],
        *,
        batch_size: int = 256,
        flip_tta: bool = False,
        calibrated: bool = True,
    ) -> np.ndarray:
        """Class probabilities: shape (10,) for one image, (N, 10) for a batch.

        Accepts file paths, encoded bytes, PIL images, numpy arrays (any size, uint8 or float in
        0..1 / 0..255, gray, RGB or RGBA) or a list / (N, H, W, C) array of them. With
        `flip_tta`, averages the probabilities of the image and its mirror. With `calibrated`
        (default) and a fitted temperature in the config, probabilities are temperature-scaled;
        the ranking of classes never changes.
        """
        batch, single = to_model_input(images)
        probabilities = np.concatenate(
            [
                self._predict_batch(batch[i : i + batch_size], flip_tta)
                for i in range(0, len(batch), batch_size)
            ]
        )
        if calibrated:
            probabilities = self.calibrate(probabilities)
        return probabilities[0] if single else probabilities

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """Raw probabilities (from `predict(..., calibrated=False)`) scaled by the model's fitted
        temperature; unchanged when it has none."""
        if self.temperature is None:
            return probabilities
        return apply_temperature(probabilities, self.temperature)

    def classify(
        self, image: ImageLike, top_k: int = DEFAULT_TOP_K, flip_tta: bool = False
    ) -> dict[str, float]:
        """The `top_k` most likely class names with their (calibrated) probabilities."""
        probabilities = self.predict(image, flip_tta=flip_tta)
        if probabilities.ndim != 1:
            raise ValueError("classify takes one image; use predict for a batch")
        return self.top_classes(probabilities, top_k)

    def check(self, image: ImageLike, top_k: int = DEFAULT_TOP_K) -> CheckedPrediction:
        """Classify one picture and say whether it may not be one of the ten classes, and why:

        >>> answer = clf.check("coffee.jpg")
        >>> answer.label, answer.out_of_distribution, answer.warning
        ('cat', True, 'This may not be one of the 10 classes: it looks unlike the photos ...')

        The check is the model's fitted detector (`cifar-evaluate --ood`, see
        `cifar_cnn.trust.ood`), or, for a model without one, a top probability below 50%."""
        return check_image(self, image, top_k)

    def classify_video(
        self, path: str | os.PathLike, every: int = 1, **options: Any
    ) -> VideoClassification:
        """Classify every `every`-th frame of a video file: per-frame labels, probabilities and
        out-of-distribution flags (see `cifar_cnn.video.classify_video` for `options`)."""
        return classify_video(self, path, every, **options)

    def top_classes(self, probabilities: np.ndarray, k: int = DEFAULT_TOP_K) -> dict[str, float]:
        """One image's `k` most likely classes, most likely first: {class name: probability}."""
        return top_classes(probabilities, self.class_names, k)

    def _predict_batch(self, batch: np.ndarray, flip_tta: bool) -> np.ndarray:
        if self._forward is None:
            # A cached graph: ~20x less per-call overhead than model.predict for small batches.
            model = self.model
            spec = tf.TensorSpec((None, *IMAGE_SHAPE), tf.uint8)
            self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        probabilities = self._forward(batch).numpy()
        if flip_tta:
            probabilities = mirror_average(probabilities, self._forward(mirrored(batch)).numpy())
        return probabilities.astype(np.float32)

    # ------------------------------------------------------------------ saving and loading

    def _save_pretrained(self, save_directory: Path) -> None:
        save_directory = Path(save_directory)
        model = fold_scaled_biases(self._inference_model())  # plain Keras needs no custom layer
        self.keras_definition = _write_keras_files(model, save_directory)
        self.config.pop("model_sha256", None)  # the legacy layout's checksum of model.keras
        self.config["weights_sha256"] = sha256(save_directory / WEIGHTS_FILE)
        self.config["versions"] = library_versions()
        # Everything config.json describes (the detector's files too) is in place before it is.
        if self.source_dir is not None and self.source_dir.resolve() != save_directory.resolve():
            for pattern in ARTIFACT_PATTERNS:
                for file in self.source_dir.glob(pattern):
                    if file.name != CARD_FILE:
                        shutil.copy2(file, save_directory / file.name)
        fitted = getattr(self, "_knn_detector", None)
        if fitted is not None and not self.config["ood_detector"].get("bank_sha256"):
            # Fitted in memory (cifar-evaluate --ood without --write): its files are written now.
            self.config["ood_detector"] = fitted.save(save_directory, self.config["ood_detector"])
        self.write_config(save_directory)
        (save_directory / LEGACY_MODEL_FILE).unlink(missing_ok=True)
        if self.metrics is not None:
            atomic_write_text(save_directory / METRICS_FILE, json.dumps(self.metrics, indent=2))
        if self.history is not None:
            atomic_write_text(save_directory / HISTORY_FILE, json.dumps(self.history, indent=1))
        self.write_model_card(save_directory)

    def write_config(self, folder: str | os.PathLike) -> None:
        """Write config.json: Keras's definition of the model and, beside it, `self.config`."""
        config = merge_config(self.config, self.keras_definition)
        atomic_write_text(Path(folder) / CONFIG_FILE, json.dumps(config, indent=2))

    def write_model_card(self, folder: str | os.PathLike, repo_id: str | None = None) -> None:
        """Render README.md from the `model_card.md` template, this config and these metrics."""
        folder = Path(folder)
        card = render_model_card(
            self.config,
            self.metrics,
            repo_id=repo_id,
            error_gallery=(folder / "errors.png").exists(),
            # Saved in Keras's layout with no custom layer left (resnet50 backbones keep one).
            plain_keras=bool(self.keras_definition)
            and '"cifar_cnn>' not in json.dumps(self.keras_definition),
        )
        atomic_write_text(folder / CARD_FILE, str(card))

    def _inference_model(self) -> keras.Model:
        # A compiled model would also save its optimizer state: weights only are shipped.
        if getattr(self.model, "optimizer", None) is None:
            return self.model
        # (keras.models.clone_model would compile the clone too.)
        clone = self.model.__class__.from_config(self.model.get_config())
        clone.set_weights(self.model.get_weights())
        return clone

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, **kwargs
    ) -> CifarClassifier:
        """Load from a local folder, a Hub repo id ("owner/name@revision" pins a revision) or a
        registry name ("resnet_fast": this repository's shipped folder, else the Hub repo its
        spec records).

        Keyword arguments are those of `ModelHubMixin.from_pretrained`: `revision`, `cache_dir`,
        `token`, `force_download`, `local_files_only`.
        """
        name = str(pretrained_model_name_or_path)
        if not os.path.isdir(name) and name in list_models():
            name = resolve_registry_name(name)
        if not os.path.isdir(name):
            if not is_hub_reference(name):
                raise ValueError(
                    f"{name}: no such model folder, and not a Hub repo id (owner/name[@revision])"
                )
            reference = parse_reference(name)
            name = reference.repo_id
            if reference.revision:
                kwargs.setdefault("revision", reference.revision)
        try:
            return super().from_pretrained(name, **kwargs)
        except LocalEntryNotFoundError:  # config.json, which the mixin fetches first
            raise not_cached_error(name, kwargs.get("revision")) from None

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict | None = None,
        **kwargs,
    ) -> CifarClassifier:
        folder = Path(model_id)
        if not folder.is_dir():
            folder = download_snapshot(
                model_id,
                MODEL_PATTERNS,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        return cls.load_folder(folder)

    @classmethod
    def load_folder(cls, folder: str | os.PathLike) -> CifarClassifier:
        """Load a saved folder, checking that its files are complete and untampered."""
        folder = Path(folder)
        if weights_file(folder) is None:
            raise ValueError(
                f"{folder}: not a CifarClassifier folder (no {WEIGHTS_FILE} or {LEGACY_MODEL_FILE})"
            )
        config, keras_model = split_config(read_config(folder))
        # A config.json with a Keras model definition goes with model.weights.h5; ours alone
        # (the legacy layout) with a zipped model.keras.
        weights = folder / (WEIGHTS_FILE if keras_model else LEGACY_MODEL_FILE)
        if not weights.is_file():
            raise ValueError(f"{folder}: incomplete model folder (no {weights.name})")
        expected = weights_digest(config)
        if expected and sha256(weights) != expected:
            raise ValueError(
                f"{weights}: checksum mismatch with config.json (incomplete or altered download)"
            )
        verify_detector_files(folder, config.get("ood_detector"))
        # The current layout is read by Keras itself, exactly as a plain Keras user reads it.
        model = keras.saving.load_model(
            folder if keras_model else weights, compile=False, safe_mode=True
        )
        classifier = cls(model, config=config)
        classifier.keras_definition = keras_model
        classifier.source_dir = folder
        classifier.metrics = read_json(folder / METRICS_FILE)
        classifier.history = read_json(folder / HISTORY_FILE)
        return classifier

    def __repr__(self) -> str:
        return (
            f"CifarClassifier({self.config['architecture']}, "
            f"{self.model.count_params():,} parameters, source={self.source_dir})"
        )


def _write_keras_files(model: keras.Model, folder: Path) -> dict[str, Any]:
    """Write Keras's `metadata.json` and `model.weights.h5` into `folder` (each replaced
    atomically) and return the serialized model that belongs in config.json."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".keras-") as staging:
        model.save(staging, zipped=False)
        keras_model = json.loads((Path(staging) / CONFIG_FILE).read_text())
        for name in (KERAS_METADATA_FILE, WEIGHTS_FILE):
            os.replace(Path(staging) / name, folder / name)
    return keras_model


def resolve_registry_name(name: str) -> str:
    """Where a registered model's trained weights are: the folder this repository ships, else
    the Hub repo its spec records."""
    spec = get_spec(name)
    if spec.shipped_folder.is_dir():
        return str(spec.shipped_folder)
    if spec.hub_repo:
        return spec.hub_repo
    raise ValueError(
        f"{name}: no trained weights shipped with this installation and none published on the "
        f"Hub; train one with `cifar-train --model {name}`, or pass a folder or repo id"
    )


def library_versions() -> dict[str, str]:
    return {
        "cifar_cnn": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "python": platform.python_version(),
    }

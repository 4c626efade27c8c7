"""CIFAR-10 data: class names; loading from an archive, a directory, the shipped slice or online.

>>> from cifar_cnn.data.cifar10 import load_cifar10, split_validation
>>> data = load_cifar10()                      # finds the archive in the usual places
>>> x_train, y_train, x_val, y_val = split_validation(data.x_train, data.y_train, fraction=0.1)

Images are uint8 arrays of shape (N, 32, 32, 3), labels int64 arrays of shape (N,).

The python-version CIFAR-10 files are pickles. They are read with a restricted unpickler that only
builds plain containers and numpy arrays, so a tampered archive cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (32, 32, 3)

#: Per-channel mean and standard deviation of the training images on the 0..1 scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"

#: The repository this package sits in (for the shipped slice and models in a source checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The small real slice shipped in the repository (see scripts/make_slice.py).
SLICE_PATH = REPO_ROOT / "data" / "cifar10_slice.npz"

_EXPECTED = (
    f"expected a {ARCHIVE_NAME} archive or a {BATCHES_DIR}/ directory holding "
    f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH}, or a .npz slice"
)


class DataError(ValueError):
    """The CIFAR-10 data could not be found or read. The message names the path and the problem."""


@dataclass(frozen=True)
class Cifar10:
    """CIFAR-10 images (uint8, NHWC) and integer labels, with where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def __repr__(self) -> str:
        return (
            f"Cifar10(train={len(self.x_train)}, test={len(self.x_test)}, source={self.source!r})"
        )


def top_classes(
    probabilities: np.ndarray, class_names: Sequence[str], k: int = 3
) -> dict[str, float]:
    """One image's `k` most likely classes, most likely first: {class name: probability}."""
    classes = len(class_names)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"top_k must be a whole number 1 to {classes}, got {k!r}")
    if not 1 <= k <= classes:
        raise ValueError(f"top_k must be 1 to {classes}, got {k}")
    order = np.argsort(probabilities)[::-1][:k]
    return {class_names[i]: float(probabilities[i]) for i in order}


def default_search_paths() -> list[Path]:
    """Where `load_cifar10()` looks when no path is given, in order."""
    cwd = Path.cwd()
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return [
        cwd / ARCHIVE_NAME,
        cwd / BATCHES_DIR,
        cwd / "data" / ARCHIVE_NAME,
        REPO_ROOT / "data" / ARCHIVE_NAME,
        keras_home / "datasets" / BATCHES_DIR,
    ]


def find_cifar10(path: str | os.PathLike | None = None) -> Path | None:
    """Where the data is: `path`, else `$CIFAR10_PATH`, else the first default that exists."""
    if path is None:
        path = os.environ.get("CIFAR10_PATH") or None
    if path is not None:
        return Path(path).expanduser()
    return next((p for p in default_search_paths() if p.exists()), None)


def load_cifar10(path: str | os.PathLike | None = None, *, download: bool = True) -> Cifar10:
    """Load CIFAR-10 from an archive, an extracted directory or a `.npz` slice.

    Args:
        path: a `cifar-10-python.tar.gz`, a `cifar-10-batches-py/` directory or a `.npz` file with
            `x_train, y_train, x_test, y_test`. Defaults to `$CIFAR10_PATH`, then the places in
            `default_search_paths()`.
        download: when nothing is found locally, fall back to `keras.datasets.cifar10` (needs
            internet access).

    Raises:
        DataError: the path does not exist or does not hold CIFAR-10 in a readable form.
    """
    resolved = find_cifar10(path)
    if resolved is None:
        if not download:
            searched = ", ".join(str(p) for p in default_search_paths())
            raise DataError(f"CIFAR-10 not found (searched {searched}); {_EXPECTED}")
        return _download()
    if not resolved.exists():
        raise DataError(f"{resolved}: no such file or directory; {_EXPECTED}")
    try:
        if resolved.is_dir():
            return _load_directory(resolved)
        if resolved.suffix == ".npz":
            return load_npz(resolved)
        return _load_archive(resolved)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - any read failure becomes one clear line
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise DataError(f"{resolved}: unreadable ({reason}); {_EXPECTED}") from None


def load_slice() -> Cifar10:
    """The small real slice shipped in the repository (100 train and 50 test images per class)."""
    return load_npz(SLICE_PATH)


def load_npz(path: str | os.PathLike) -> Cifar10:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; {_EXPECTED}") from None
    except Exception as error:  # noqa: BLE001
        raise DataError(f"{path}: unreadable .npz ({type(error).__name__}: {error})") from None
    return _checked(**arrays, source=str(path))


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded split of the training set into (x_train, y_train, x_val, y_val)."""
    val_mask = validation_mask(y, fraction, seed)
    return x[~val_mask], y[~val_mask], x[val_mask], y[val_mask]


def validation_mask(y: np.ndarray, fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Which training images `split_validation` holds out (a boolean mask over `y`).

    With one seed, a smaller fraction holds out a subset of a larger one's images: each class's
    images are shuffled once and the first `fraction` of them held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        val_idx.append(idx[: max(1, round(len(idx) * fraction))])
    val_mask = np.zeros(len(y), dtype=bool)
    val_mask[np.concatenate(val_idx)] = True
    return val_mask


def kfold_indices(y: np.ndarray, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold: a list of (train_indices, val_indices), one pair per fold."""
    if folds < 2:
        raise ValueError(f"k-fold needs at least 2 folds, got {folds}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        fold_of[idx] = np.arange(len(idx)) % folds
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(folds)]


def balanced_subset(x: np.ndarray, y: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` images of each class, in the original order (deterministic)."""
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(NUM_CLASSES)])
    keep.sort()
    return x[keep], y[keep]


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, bytes, numbers and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 store bytes; harmless
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{name}: not a CIFAR-10 batch (no b'data'/b'labels' keys)")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{name}: expected data of shape (N, 3072), got {data.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _from_batches(read, source: str) -> Cifar10:
    train = [_read_batch(read(name), name) for name in TRAIN_BATCHES]
    x_test, y_test = _read_batch(read(TEST_BATCH), TEST_BATCH)
    return _checked(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
        source=source,
    )


def _load_archive(path: Path) -> Cifar10:
    try:
        tar = tarfile.open(path, "r:*")
    except tarfile.ReadError:
        size = path.stat().st_size
        message = f"{path}: not a readable tar archive ({size:,} bytes); {_EXPECTED}"
        raise DataError(message) from None
    with tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            if name not in members:
                raise DataError(f"{path}: archive has no {BATCHES_DIR}/{name}; {_EXPECTED}")
            return tar.extractfile(members[name]).read()

        return _from_batches(read, str(path))


def _load_directory(path: Path) -> Cifar10:
    if (path / BATCHES_DIR).is_dir():
        path = path / BATCHES_DIR

    def read(name: str) -> bytes:
        file = path / name
        if not file.is_file():
            raise DataError(f"{path}: directory has no {name}; {_EXPECTED}")
        return file.read_bytes()

    return _from_batches(read, str(path))


def _download() -> Cifar10:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # noqa: BLE001
        raise DataError(
            f"CIFAR-10 not found locally and the download failed ({error}); give the path of a "
            f"local copy or set CIFAR10_PATH"
        ) from None
    return _checked(x_train, y_train.ravel(), x_test, y_test.ravel(), source="keras.datasets")


def _checked(x_train, y_train, x_test, y_test, source: str) -> Cifar10:
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                f"{source}: {name} images must be uint8 (N, 32, 32, 3), got {x.dtype} {x.shape}"
            )
        if len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES)):
            raise DataError(f"{source}: {name} labels must be {len(x)} integers in 0..9")
    return Cifar10(
        x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), source=source
    )

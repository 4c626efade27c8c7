"""cifar_cnn: CIFAR-10 classifiers to train on a CPU, share on the Hugging Face Hub and explain.

>>> from cifar_cnn import CifarClassifier, load_pretrained
>>> clf = CifarClassifier.from_pretrained("resnet_fast")      # a folder, "owner/repo@v1" or a name
>>> clf.classify("examples/test0000_cat.png")
{'cat': 0.91, ...}
>>> load_pretrained("models/ensemble")     # a CifarClassifier or CifarEnsemble, as the folder holds

The library, by concept (each a subpackage or module):

- `data`: CIFAR-10, any picture as model input, augmentation, outlier sources (Fashion-MNIST,
  photographs, synthetic pictures) for out-of-distribution measurements.
- `models`: the registry (`create_model`, one `ModelSpec` per model) and its custom layers.
- `classifier`, `ensemble`, `voting`: inference, saving and loading (`CifarClassifier`,
  `CifarEnsemble`), and how members vote.
- `hub`: the folder layout shared with Hub repos, source names ("owner/name@revision"), downloads.
- `explain`: Grad-CAM, feature maps, layer probing.
- `trust`: calibration, out-of-distribution detection, corruptions.
- `report`: metrics, plots, model cards.
- `export`: SavedModel (TensorFlow Serving), TFLite and ONNX.
"""

import os

__version__ = "0.2.0"

# Must be set before TensorFlow is imported: oneDNN is off by default on AMD CPUs, and turning it on
# doubles conv-net training throughput there (see docs/performance.md). Users can still override.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cifar_cnn.data.cifar10 import CLASS_NAMES, NUM_CLASSES, DataError, load_cifar10  # noqa: E402

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "DataError",
    "load_cifar10",
    "create_model",
    "list_models",
    "CifarClassifier",
    "CifarEnsemble",
    "load_pretrained",
]

# Loaded on first use, so that `import cifar_cnn.data` stays fast and free of TensorFlow.
_LAZY = {
    "create_model": "cifar_cnn.models",
    "list_models": "cifar_cnn.models",
    "CifarClassifier": "cifar_cnn.classifier",
    "CifarEnsemble": "cifar_cnn.ensemble",
    "load_pretrained": "cifar_cnn.ensemble",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cifar_cnn' has no attribute {name!r}")

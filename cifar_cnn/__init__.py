"""cifar_cnn: CIFAR-10 classifiers to train on a CPU, share on the Hugging Face Hub and explain.

>>> from cifar_cnn import CifarClassifier
>>> clf = CifarClassifier.from_pretrained("models/resnet_fast")
>>> clf.classify("examples/test0000_cat.png")
{'cat': 0.91, ...}
"""

import os

# Must be set before TensorFlow is imported: oneDNN is off by default on AMD CPUs, and turning it on
# doubles conv-net training throughput there (see README, "Performance"). Users can still override.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cifar_cnn.data import CLASS_NAMES, NUM_CLASSES, DataError, load_cifar10  # noqa: E402

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "DataError",
    "load_cifar10",
    "build_model",
    "list_models",
    "CifarClassifier",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `import cifar_cnn.data` stays fast and free of TensorFlow.
    if name in ("build_model", "list_models"):
        from cifar_cnn import architectures

        return getattr(architectures, name)
    if name == "CifarClassifier":
        from cifar_cnn.classifier import CifarClassifier

        return CifarClassifier
    raise AttributeError(f"module 'cifar_cnn' has no attribute {name!r}")

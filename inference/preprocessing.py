"""Turning a picture into the tensor a model expects; shared by training and inference.

The configuration is plain data saved in every model's manifest, so a checkpoint always travels with the exact
preprocessing it was trained with (timm's habit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F


@dataclass(frozen=True)
class PreprocessConfig:
    """How a picture becomes a model input.

    The EfficientNet-Lite ImageNet weights were trained on inputs scaled to [-1, 1] (mean = std = 0.5);
    the usual ImageNet statistics cost 11 points of top-1 accuracy on them.
    """

    image_size: int = 224
    # Resize the shorter side to this, then centre-crop image_size. Equal to image_size keeps the whole
    # short side, which matters for a phone near the border of the picture.
    resize_size: int = 224
    center_crop: bool = False
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if "mean" in known:
            known["mean"] = tuple(known["mean"])
        if "std" in known:
            known["std"] = tuple(known["std"])
        return cls(**known)

    @property
    def draft_size(self) -> tuple[int, int]:
        """The smallest JPEG draft size that still leaves enough pixels for the resize."""
        return (self.resize_size, self.resize_size)


def resize_for_model(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    """Resize (and optionally centre-crop) to the model's input size in one resampling step.

    Without centre-cropping the picture is squeezed to a square, so nothing at its edges is cut away.
    """
    interpolation = InterpolationMode(config.interpolation)
    if config.center_crop:
        resized = F.resize(image, config.resize_size, interpolation=interpolation)
        return F.center_crop(resized, [config.image_size, config.image_size])
    return F.resize(image, [config.image_size, config.image_size], interpolation=interpolation)


def normalize_tensor(tensor: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """Scale a [0, 1] CHW tensor with the model's mean and standard deviation."""
    return F.normalize(tensor, mean=list(config.mean), std=list(config.std))


def image_to_tensor(image: Image.Image, config: PreprocessConfig) -> torch.Tensor:
    """The model input (C, H, W, float32) for one upright RGB picture."""
    resized = resize_for_model(image, config)
    return normalize_tensor(F.pil_to_tensor(resized).float().div_(255.0), config)


def images_to_batch(images: list[Image.Image], config: PreprocessConfig) -> torch.Tensor:
    """Stack pictures into one (N, C, H, W) batch."""
    return torch.stack([image_to_tensor(image, config) for image in images])

"""Turning a picture into the tensor a model expects; shared by training and inference.

The configuration is plain data saved in every model's manifest, so a checkpoint always travels with the exact
preprocessing it was trained with (timm's habit).

Written with Pillow and torch alone, giving the same numbers bit for bit as torchvision's ``resize``,
``center_crop``, ``pil_to_tensor`` and ``normalize`` (a test proves it): importing torchvision cost every worker
process 176 MB of memory for these four functions (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

# Pillow resampling filters by the names torchvision's InterpolationMode uses (the manifests store these names).
_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


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
    resample = _resampling(config.interpolation)
    if config.center_crop:
        width, height = image.size
        short, long = min(width, height), max(width, height)
        new_short, new_long = config.resize_size, int(config.resize_size * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
        return _center_crop(_resize(image, size, resample), config.image_size)
    return _resize(image, (config.image_size, config.image_size), resample)


def normalize_tensor(tensor: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """Scale a [0, 1] (..., C, H, W) tensor with the model's mean and standard deviation."""
    return _normalize_in_place(tensor.clone(), config)


def image_to_tensor(image: Image.Image, config: PreprocessConfig) -> torch.Tensor:
    """The model input (C, H, W, float32) for one upright RGB picture."""
    pixels = np.array(resize_for_model(image, config))  # a writable (H, W, C) uint8 copy of 150 kB
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    # Channels-first in memory before the float maths: half the time of working through permuted strides.
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().float().div_(255.0)
    return _normalize_in_place(tensor, config)


def _normalize_in_place(tensor: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    mean = torch.as_tensor(config.mean, dtype=tensor.dtype).view(-1, 1, 1)
    std = torch.as_tensor(config.std, dtype=tensor.dtype).view(-1, 1, 1)
    return tensor.sub_(mean).div_(std)


def _resampling(name: str) -> Image.Resampling:
    try:
        return _RESAMPLING[name]
    except KeyError as error:
        raise ValueError(f"Unknown interpolation {name!r}; choose one of {', '.join(_RESAMPLING)}.") from error


def _resize(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """``image`` at ``size`` (width, height); a picture already that size is returned as it is, not resampled."""
    return image if image.size == size else image.resize(size, resample)


def _center_crop(image: Image.Image, side: int) -> Image.Image:
    """The centred ``side`` x ``side`` square; a smaller picture is first padded with black, as torchvision does."""
    width, height = image.size
    if side > width or side > height:
        padded = Image.new(image.mode, (max(width, side), max(height, side)))
        padded.paste(image, ((side - width) // 2 if side > width else 0, (side - height) // 2 if side > height else 0))
        image = padded
        width, height = image.size
        if (width, height) == (side, side):
            return image
    top = round((height - side) / 2.0)
    left = round((width - side) / 2.0)
    return image.crop((left, top, left + side, top + side))


def images_to_batch(images: list[Image.Image], config: PreprocessConfig) -> torch.Tensor:
    """Stack pictures into one (N, C, H, W) batch."""
    return torch.stack([image_to_tensor(image, config) for image in images])

"""Turning a picture into the tensor a model expects; shared by training and inference.

The configuration is plain data saved in every model's manifest, so a checkpoint always travels with the exact
preprocessing it was trained with (timm's habit).

Written with Pillow and NumPy alone, giving the same numbers bit for bit as torchvision's ``resize``,
``center_crop``, ``pil_to_tensor`` and ``normalize`` (a test proves it). Serving never imports torch: the worker
runs exported graphs in ONNX Runtime on NumPy arrays, and ``import torch`` alone costs a process ~500 MB
(docs/performance.md); the torch paths (training, the eager engine) wrap these arrays with ``torch.from_numpy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

# Pillow resampling filters by the names torchvision's InterpolationMode uses (the manifests store these names).
RESAMPLING = {
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


def image_to_array(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """The model input (C, H, W, float32) for one upright RGB picture, as a NumPy array."""
    pixels = np.asarray(resize_for_model(image, config))
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    # Channels-first in memory before the float maths: half the time of working through permuted strides.
    array = np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32)
    array /= np.float32(255.0)
    return _normalize_array_in_place(array, config)


def images_to_array(images: Sequence[Image.Image], config: PreprocessConfig) -> np.ndarray:
    """Stack pictures into one (N, C, H, W) float32 batch."""
    return np.stack([image_to_array(image, config) for image in images])


def crop_boxes(width: int, height: int, grid: int, fraction: float) -> list[tuple[int, int, int, int]]:
    """Overlapping crops covering the picture on a ``grid`` x ``grid`` lattice, each ``fraction`` of a side."""
    if grid <= 0:
        return []
    crop_w, crop_h = max(1, round(width * fraction)), max(1, round(height * fraction))
    steps = [0.0] if grid == 1 else [i / (grid - 1) for i in range(grid)]
    return [
        (
            round((width - crop_w) * sx),
            round((height - crop_h) * sy),
            round((width - crop_w) * sx) + crop_w,
            round((height - crop_h) * sy) + crop_h,
        )
        for sy in steps
        for sx in steps
    ]


def multiscale_settings(options: Mapping[str, Any]) -> tuple[int, float]:
    """(grid, crop fraction) from a manifest's options: what every engine reads, with the same defaults.

    Grid 0 (the default) means the whole picture only.
    """
    return int(options.get("multiscale_grid", 0)), float(options.get("multiscale_fraction", 0.6))


def crop_arrays(image: Image.Image, config: PreprocessConfig, *, grid: int, fraction: float) -> list[np.ndarray]:
    """The ``grid`` x ``grid`` overlapping crops of ``image`` (:func:`crop_boxes`), each preprocessed as a picture."""
    return [image_to_array(image.crop(box), config) for box in crop_boxes(*image.size, grid, fraction)]


def multiscale_views_array(
    images: Sequence[Image.Image], config: PreprocessConfig, *, grid: int = 0, fraction: float = 0.6
) -> np.ndarray:
    """Each picture followed by its ``grid`` x ``grid`` overlapping crops, as one (N * (1 + grid**2), C, H, W) batch.

    With ``grid`` 0 this is :func:`images_to_array`: one view per picture.
    """
    views = []
    for image in images:
        views.append(image_to_array(image, config))
        views.extend(crop_arrays(image, config, grid=grid, fraction=fraction))
    return np.stack(views)


def _normalize_array_in_place(array: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    channels = array.shape[-3]
    array -= np.asarray(config.mean, dtype=np.float32)[:channels].reshape(-1, 1, 1)
    array /= np.asarray(config.std, dtype=np.float32)[:channels].reshape(-1, 1, 1)
    return array


def _resampling(name: str) -> Image.Resampling:
    try:
        return RESAMPLING[name]
    except KeyError as error:
        raise ValueError(f"Unknown interpolation {name!r}; choose one of {', '.join(RESAMPLING)}.") from error


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

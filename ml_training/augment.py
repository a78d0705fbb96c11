"""Training-time picture augmentation; the clean path is :func:`inference.preprocessing.image_to_tensor` itself.

Every view ends in the same ``normalize_tensor`` as inference, so training and inference differ only in the
random geometry and colour applied before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from inference.preprocessing import PreprocessConfig, normalize_tensor


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes a phone picture can undergo and still show a phone."""

    # Crops down to this fraction of the picture show a phone larger and partly cut off, which teaches that a
    # part of a phone (a corner with the camera bump, half a screen) is evidence too.
    min_crop_scale: float = 0.35
    max_rotation: float = 15.0
    horizontal_flip: bool = True
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03


def build_augmentation(config: AugmentConfig, preprocess: PreprocessConfig, *, crop: bool = True) -> transforms.Compose:
    """PIL picture -> augmented PIL picture of the model's input size.

    ``crop=False`` is for composites, whose small phone a crop could cut away while the label still says phone.
    """
    interpolation = InterpolationMode(preprocess.interpolation)
    size = [preprocess.image_size, preprocess.image_size]
    steps: list[object] = [transforms.RandomRotation(config.max_rotation, interpolation=interpolation)]
    if crop:
        steps.append(
            transforms.RandomResizedCrop(size, scale=(config.min_crop_scale, 1.0), interpolation=interpolation)
        )
    else:
        steps.append(transforms.Resize(size, interpolation=interpolation))
    if config.horizontal_flip:
        steps.append(transforms.RandomHorizontalFlip())
    steps.append(transforms.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue))
    return transforms.Compose(steps)


def augmented_tensor(
    image: Image.Image, augmentation: transforms.Compose, preprocess: PreprocessConfig
) -> torch.Tensor:
    """One random training view as a normalised (C, H, W) tensor."""
    return normalize_tensor(F.pil_to_tensor(augmentation(image)).float().div_(255.0), preprocess)

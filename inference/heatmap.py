""" "Where is the phone": which part of a picture drove the classifier's verdict, drawn as a see-through overlay.

Two ways to find the evidence, both on the classifier's own network:

* :func:`grad_cam` for networks that expose their last feature map (cheap: one forward and one backward pass);
* :func:`occlusion_evidence` for any :class:`~inference.classifier.PhoneClassifier`: grey out one patch at a time
  and measure how much the phone log-odds drop (model-agnostic, about ``grid**2`` forward passes).

A classifier says which one applies through :meth:`PhoneClassifier.evidence_map`; :func:`heatmap_overlay` turns
the map into an RGBA picture the size of the upload's aspect ratio, transparent where there is no evidence, so the
web page can stack it over the photo and switch it on and off. Knows nothing of Django.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from inference.preprocessing import PreprocessConfig

if TYPE_CHECKING:
    from inference.classifier import PhoneClassifier

OVERLAY_MAX_SIDE = 640
# Patches greyed out by occlusion: a grid x grid lattice of squares PATCH_FRACTION of the side, overlapping.
OCCLUSION_GRID = 7
OCCLUSION_PATCH_FRACTION = 0.3
OCCLUSION_BATCH = 16


def grad_cam(features: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Grad-CAM: each channel of ``features`` (N, C, H, W) weighted by the mean gradient of ``score`` over it.

    ``score`` maps the features to one phone log-odds per picture (N,). Returns (N, H, W): positive where the
    features push the verdict towards "phone". Runs with gradients on even inside ``torch.inference_mode``
    callers' processes, because it needs them.
    """
    with torch.inference_mode(False), torch.enable_grad():
        leaf = features.detach().clone().requires_grad_(True)
        (gradients,) = torch.autograd.grad(score(leaf).sum(), leaf)
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        return (weights * leaf).sum(dim=1).detach()


def occlusion_evidence(
    classifier: PhoneClassifier,
    image: Image.Image,
    *,
    grid: int = OCCLUSION_GRID,
    patch_fraction: float = OCCLUSION_PATCH_FRACTION,
) -> torch.Tensor:
    """How much the phone log-odds drop when each patch of ``image`` is greyed out, shape (grid, grid).

    Works for any classifier because it only calls :meth:`PhoneClassifier.phone_logits` on altered pictures,
    so multi-crop models and future kinds are explained by exactly the computation that gave their verdict.
    """
    # Patches cover only what the model sees, the same region the overlay is later laid on.
    box_left, box_top, box_right, box_bottom = model_input_box(*image.size, classifier.manifest.preprocessing)
    width, height = box_right - box_left, box_bottom - box_top
    patch_w, patch_h = max(1, round(width * patch_fraction)), max(1, round(height * patch_fraction))
    steps = [0.0] if grid == 1 else [index / (grid - 1) for index in range(grid)]
    occluded = []
    for sy in steps:
        for sx in steps:
            left, top = box_left + round((width - patch_w) * sx), box_top + round((height - patch_h) * sy)
            copy = image.copy()
            copy.paste((128, 128, 128), (left, top, left + patch_w, top + patch_h))
            occluded.append(copy)
    with torch.inference_mode():
        baseline = classifier.phone_logits(classifier.preprocess([image]))[0]
        drops = [
            baseline - classifier.phone_logits(classifier.preprocess(occluded[start : start + OCCLUSION_BATCH]))
            for start in range(0, len(occluded), OCCLUSION_BATCH)
        ]
    return torch.cat(drops).view(grid, grid)


def model_input_box(width: int, height: int, config: PreprocessConfig) -> tuple[int, int, int, int]:
    """The part of a ``width`` x ``height`` picture the model actually sees, as (left, top, right, bottom).

    With centre-cropping the edges are cut away, so the evidence map must be laid over the centre only.
    """
    if not config.center_crop:
        return (0, 0, width, height)
    side = min(width, height) * config.image_size / config.resize_size
    crop_w, crop_h = min(width, side), min(height, side)
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return (round(left), round(top), round(left + crop_w), round(top + crop_h))


def normalize_evidence(evidence: torch.Tensor) -> np.ndarray:
    """Scale a raw map to [0, 1]: negative evidence (pointing at "not a phone") counts as none.

    The strongest cell becomes 1, so the overlay shows where the evidence is relative to the rest of the
    picture; an all-negative map (no phone evidence anywhere) stays all zero.
    """
    positive = evidence.detach().float().clamp(min=0)
    peak = float(positive.max()) if positive.numel() else 0.0
    if peak <= 0 or not np.isfinite(peak):
        return np.zeros(tuple(positive.shape), dtype=np.float32)
    return (positive / peak).numpy().astype(np.float32)


# Colour ramp from faint yellow to deep red; alpha grows with the evidence, so weak cells stay see-through.
_RAMP = np.array([(255, 237, 160), (254, 178, 76), (240, 59, 32), (189, 0, 38)], dtype=np.float32)


def _colorize(values: np.ndarray) -> np.ndarray:
    positions = values * (len(_RAMP) - 1)
    low = np.clip(np.floor(positions).astype(int), 0, len(_RAMP) - 2)
    fraction = (positions - low)[..., None]
    rgb = _RAMP[low] * (1 - fraction) + _RAMP[low + 1] * fraction
    alpha = np.clip((values - 0.15) / 0.85, 0, 1) ** 0.8 * 200
    return np.dstack([rgb, alpha]).round().astype(np.uint8)


def heatmap_overlay(
    evidence: torch.Tensor,
    *,
    image_size: tuple[int, int],
    config: PreprocessConfig,
    max_side: int = OVERLAY_MAX_SIDE,
) -> Image.Image:
    """An RGBA overlay with the picture's aspect ratio: the evidence map smoothly upsampled onto the region the
    model saw, transparent elsewhere and where the evidence is weak."""
    width, height = image_size
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top, right, bottom = (round(edge * scale) for edge in model_input_box(width, height, config))
    box_w, box_h = max(1, right - left), max(1, bottom - top)
    values = torch.from_numpy(normalize_evidence(evidence))[None, None]
    upsampled = F.interpolate(values, size=(box_h, box_w), mode="bicubic", align_corners=False)
    region = _colorize(upsampled[0, 0].clamp(0, 1).numpy())
    overlay = Image.new("RGBA", (out_w, out_h), (0, 0, 0, 0))
    overlay.paste(Image.fromarray(region, "RGBA"), (left, top))
    return overlay


def heatmap_png(classifier: PhoneClassifier, image: Image.Image, *, max_side: int = OVERLAY_MAX_SIDE) -> bytes:
    """The overlay for ``image`` as PNG bytes, using the classifier's own evidence map."""
    overlay = heatmap_overlay(
        classifier.evidence_map(image),
        image_size=image.size,
        config=classifier.manifest.preprocessing,
        max_side=max_side,
    )
    buffer = io.BytesIO()
    overlay.save(buffer, "PNG")  # optimize=True costs several times the encode for a few per cent
    return buffer.getvalue()

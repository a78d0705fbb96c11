""" "Where is the phone": which part of a picture drove a PyTorch classifier's verdict.

Two ways to find the evidence, both on the classifier's own network:

* :func:`grad_cam` for networks that expose their last feature map (cheap: one forward and one backward pass);
* :func:`occlusion_evidence` for any PyTorch classifier: grey out one patch at a time
  and measure how much the phone log-odds drop (model-agnostic, about ``grid**2`` forward passes).

A classifier says which one applies through :meth:`evidence_map`; :mod:`inference.overlay` draws the map (without
torch, in the serving worker). Knows nothing of Django.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from PIL import Image

from inference.overlay import model_input_box

if TYPE_CHECKING:
    from inference.torch_engine import TorchClassifier

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
    classifier: TorchClassifier,
    image: Image.Image,
    *,
    grid: int = OCCLUSION_GRID,
    patch_fraction: float = OCCLUSION_PATCH_FRACTION,
) -> torch.Tensor:
    """How much the phone log-odds drop when each patch of ``image`` is greyed out, shape (grid, grid).

    Works for any classifier because it only calls :meth:`TorchClassifier.phone_logits` on altered pictures,
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

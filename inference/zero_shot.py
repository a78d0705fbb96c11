"""The ImageNet zero-shot model: EfficientNet-Lite's own ImageNet head, phone = the telephone classes' mass.

No training on phone pictures at all, hence "zero-shot". Its graph has no cell map, so its heat maps come from
Grad-CAM on the last feature map (a forward and a backward pass, PyTorch only).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from inference.backbone import build_efficientnet_lite
from inference.base import DEFAULT_MAX_BATCH
from inference.manifest import ModelManifest
from inference.torch_engine import TorchClassifier
from inference.torch_evidence import grad_cam

if TYPE_CHECKING:
    from efficientnet_lite_pytorch import EfficientNet

# ImageNet classes that are telephones: 487 cellular telephone, 528 dial telephone, 707 pay-phone.
IMAGENET_PHONE_CLASSES = (487, 528, 707)


class ImageNetZeroShotClassifier(TorchClassifier):
    """Phone probability = softmax mass on the telephone classes, returned as log-odds like every other kind."""

    network: EfficientNet

    def __init__(self, manifest: ModelManifest, model_dir: Path, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        super().__init__(manifest, model_dir, max_batch=max_batch)
        self.network = build_efficientnet_lite(manifest.architecture).eval()
        self.phone_classes = list(manifest.options.get("phone_classes", IMAGENET_PHONE_CLASSES))

    def network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self._phone_logits_from_features(self.network.extract_features(batch)),)

    def _phone_logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        # The library's forward() after extract_features: average pooling, (eval-mode) dropout, the ImageNet head.
        pooled = self.network._avg_pooling(features).flatten(1)
        probabilities = torch.softmax(self.network._fc(self.network._dropout(pooled)), dim=1)
        phone_mass = probabilities[:, self.phone_classes].sum(dim=1).clamp(1e-7, 1 - 1e-7)
        return torch.logit(phone_mass)

    def explain_without_cells(self, image: Image.Image) -> np.ndarray:
        """Grad-CAM on the last feature map (7x7 for 224 px): one forward and one backward pass."""
        with torch.no_grad():
            features = self.network.extract_features(self.preprocess([image]))
        return grad_cam(features, self._phone_logits_from_features)[0].numpy()

"""The phone classifier interface and the ImageNet zero-shot implementation.

A classifier turns pictures into :class:`Prediction` objects. Subclasses only say how a preprocessed batch
becomes phone logits; thresholds, temperature and labelling live here so every model kind applies them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from inference.backbone import build_efficientnet_lite
from inference.heatmap import grad_cam, occlusion_evidence
from inference.loader import register_model_kind
from inference.manifest import ModelManifest
from inference.prediction import NOT_PHONE, PHONE, Prediction, calibrated_probabilities, verdicts
from inference.preprocessing import images_to_batch

__all__ = ["NOT_PHONE", "PHONE", "ImageNetZeroShotClassifier", "PhoneClassifier", "Prediction"]

# ImageNet classes that are telephones: 487 cellular telephone, 528 dial telephone, 707 pay-phone.
IMAGENET_PHONE_CLASSES = (487, 528, 707)


class PhoneClassifier:
    """Base class: subclasses implement :meth:`phone_logits` for a preprocessed batch."""

    def __init__(self, manifest: ModelManifest, model_dir: Path) -> None:
        self.manifest = manifest
        self.model_dir = model_dir

    @property
    def version(self) -> str:
        return self.manifest.version

    def phone_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Uncalibrated log-odds of "phone", shape (N,)."""
        raise NotImplementedError

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return images_to_batch(list(images), self.manifest.preprocessing)

    @torch.inference_mode()
    def phone_probabilities(self, images: Sequence[Image.Image]) -> list[float]:
        """Calibrated probability of "phone" for each picture (temperature from the manifest applied)."""
        if not images:
            return []
        return calibrated_probabilities(self.phone_logits(self.preprocess(images)).numpy(), self.manifest)

    def evidence_map(self, image: Image.Image) -> torch.Tensor:
        """Where the phone evidence is in ``image``: a small (H, W) map over the region the model sees.

        Positive cells pushed the verdict towards "phone". The default greys out patches and measures the drop
        in :meth:`phone_logits` (occlusion), which works for every subclass; a subclass whose network exposes
        its last feature map should override this with something cheaper (Grad-CAM or its own cell logits).
        """
        return occlusion_evidence(self, image)

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """Verdicts for upright RGB pictures, in the same order."""
        return verdicts(self.phone_probabilities(images), self.manifest)

    def predict_and_explain(self, image: Image.Image) -> tuple[Prediction, None]:
        """The verdict for one picture; the evidence map is left to :meth:`evidence_map` (its own pass)."""
        return self.predict([image])[0], None


class ImageNetZeroShotClassifier(PhoneClassifier):
    """EfficientNet-Lite's own ImageNet head: phone probability = softmax mass on the telephone classes.

    No training on phone pictures at all, hence "zero-shot"; the probability is returned as log-odds so the
    base class can treat it like any other model.
    """

    def __init__(self, manifest: ModelManifest, model_dir: Path) -> None:
        super().__init__(manifest, model_dir)
        self.network: nn.Module = build_efficientnet_lite(manifest.architecture).eval()
        self.phone_classes = list(manifest.options.get("phone_classes", IMAGENET_PHONE_CLASSES))

    def phone_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self._phone_logits_from_features(self.network.extract_features(batch))

    def _phone_logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        # The library's forward() after extract_features: average pooling, (eval-mode) dropout, the ImageNet head.
        pooled = self.network._avg_pooling(features).flatten(1)
        probabilities = torch.softmax(self.network._fc(self.network._dropout(pooled)), dim=1)
        phone_mass = probabilities[:, self.phone_classes].sum(dim=1).clamp(1e-7, 1 - 1e-7)
        return torch.logit(phone_mass)

    def evidence_map(self, image: Image.Image) -> torch.Tensor:
        """Grad-CAM on the last feature map (7x7 for 224 px): one forward and one backward pass."""
        with torch.no_grad():
            features = self.network.extract_features(self.preprocess([image]))
        return grad_cam(features, self._phone_logits_from_features)[0]


register_model_kind("imagenet-zero-shot", ImageNetZeroShotClassifier)

"""The fine-tuned phone classifier on eager PyTorch: :class:`FineTunedPhoneNet` behind the shared classifier base.

Optional multi-scale inference (manifest option ``multiscale_grid`` > 0) also classifies overlapping crops and
keeps the strongest phone evidence, which helps with phones that are small in the frame at a cost of
``1 + grid**2`` forward passes per picture.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inference.base import DEFAULT_MAX_BATCH
from inference.contract import EVIDENCE_OUTPUT, LOGITS_OUTPUT
from inference.finetuned_network import KIND, WEIGHTS_FILE, FineTunedPhoneNet, PooledLogitHead, network_options
from inference.manifest import ModelManifest
from inference.preprocessing import crop_boxes
from inference.torch_engine import TorchClassifier, load_trained_network

__all__ = ["KIND", "WEIGHTS_FILE", "FineTunedClassifier", "FineTunedPhoneNet", "PooledLogitHead", "crop_boxes"]


class FineTunedClassifier(TorchClassifier):
    """A checkpoint from ``ml_training`` on top of the packaged ImageNet trunk."""

    output_names = (LOGITS_OUTPUT, EVIDENCE_OUTPUT)
    network: FineTunedPhoneNet

    def __init__(self, manifest: ModelManifest, model_dir: Path, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        super().__init__(manifest, model_dir, max_batch=max_batch)
        network = FineTunedPhoneNet(manifest.architecture, **network_options(manifest))
        self.network = load_trained_network(network, manifest, model_dir, WEIGHTS_FILE)

    def network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Phone log-odds per picture (N,) and the head's per-cell logits of every view (N * views, H, W).

        One pass gives both, so the exported graph serves verdicts and heat maps alike; a multi-scale model's
        picture logit is the strongest of its views.
        """
        cells = self.network.head.cell_map(self.network.tail_features(self.network.trunk(batch)))
        logits = self.network.head.pool(cells)
        return logits.view(-1, self.views_per_image).max(dim=1).values, cells

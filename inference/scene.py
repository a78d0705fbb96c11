"""The scene model on eager PyTorch: :class:`~inference.scene_network.ScenePhoneNet` behind the classifier base.

Its graph gives the picture's log-odds (its cells pooled, see ``ScenePhoneNet.pool``), every cell's evidence (the
evidence map, whose best cell equals the picture's and which the boxes are read from, so the heat map and the boxes
always agree) and every cell's box; the shared base calibrates them and :mod:`inference.boxes` turns the peaks
into the verdict's boxes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inference.base import DEFAULT_MAX_BATCH
from inference.contract import BOXES_OUTPUT, EVIDENCE_OUTPUT, LOGITS_OUTPUT
from inference.manifest import ModelLoadError, ModelManifest
from inference.scene_network import ScenePhoneNet
from inference.scene_options import SceneNetworkOptions
from inference.torch_engine import TorchClassifier, load_trained_network

KIND = "scene-detector"
WEIGHTS_FILE = "weights.pt"


class SceneClassifier(TorchClassifier):
    """A trained scene head on the packaged ImageNet trunk (its last ``trainable_blocks`` blocks as tuned)."""

    output_names = (LOGITS_OUTPUT, EVIDENCE_OUTPUT, BOXES_OUTPUT)
    network: ScenePhoneNet

    def __init__(self, manifest: ModelManifest, model_dir: Path, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        super().__init__(manifest, model_dir, max_batch=max_batch)
        if self.multiscale_grid:
            raise ModelLoadError(f"Model {manifest.version}: a scene model scores cells, not multi-scale crops.")
        options = SceneNetworkOptions.from_manifest_options(manifest.options)
        network = ScenePhoneNet.from_options(options, manifest.architecture)
        self.network = load_trained_network(network, manifest, model_dir, WEIGHTS_FILE)

    def network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs: tuple[torch.Tensor, ...] = self.network(batch)
        return outputs

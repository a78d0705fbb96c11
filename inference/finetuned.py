"""The fine-tuned phone classifier: EfficientNet-Lite with its last blocks retrained and a pooled phone head.

The network is defined here, not in ``ml_training``, so the worker can load a model without the training code,
and training builds exactly the network that inference will run.

A checkpoint holds only what training changed (the unfrozen tail blocks and the head); the frozen early blocks
come from the ImageNet weights in the pip package. The manifest pins the checksum of that package file, so a
checkpoint is never combined with a different base than the one it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from inference.backbone import build_efficientnet_lite, imagenet_weights_path
from inference.classifier import PhoneClassifier
from inference.evidence import merged_evidence
from inference.loader import register_model_kind
from inference.manifest import ModelLoadError, ModelManifest, sha256_file
from inference.preprocessing import crop_boxes, multiscale_settings, multiscale_views_array

KIND = "fine-tuned"
WEIGHTS_FILE = "weights.pt"

__all__ = ["KIND", "WEIGHTS_FILE", "FineTunedClassifier", "FineTunedPhoneNet", "PooledLogitHead", "crop_boxes"]


class PooledLogitHead(nn.Module):
    """Phone evidence per feature-map cell, pooled by log-sum-exp with a learned sharpness.

    Average pooling (the ImageNet head) dilutes a phone that fills one cell of the 7x7 map; max pooling is
    noisy. Log-sum-exp with sharpness r moves between the two (r -> 0: mean, r -> inf: max) and training picks r.
    """

    def __init__(self, in_channels: int = 1280, dropout: float = 0.2, initial_sharpness: float = 2.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.cell_logits = nn.Conv2d(in_channels, 1, kernel_size=1)
        # softplus(raw) = initial_sharpness
        self.raw_sharpness = nn.Parameter(torch.tensor(math.log(math.expm1(initial_sharpness))))

    @property
    def sharpness(self) -> torch.Tensor:
        return F.softplus(self.raw_sharpness) + 1e-3

    def cell_map(self, features: torch.Tensor) -> torch.Tensor:
        """Per-cell phone logits, shape (N, H, W): where the network sees phone evidence."""
        return self.cell_logits(self.dropout(features)).squeeze(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.pool(self.cell_map(features))

    def pool(self, cell_map: torch.Tensor) -> torch.Tensor:
        """Phone log-odds (N,) from per-cell logits (N, H, W)."""
        cells = cell_map.flatten(1)
        r = self.sharpness
        return (torch.logsumexp(r * cells, dim=1) - math.log(cells.shape[1])) / r


class FineTunedPhoneNet(nn.Module):
    """EfficientNet-Lite split into a frozen trunk (stem + first ``freeze_blocks`` blocks) and a trained tail.

    The split is explicit so training can run the trunk once per picture, cache its output, and train only the
    tail; ``freeze_blocks`` equal to the block count trains the head alone.
    """

    def __init__(
        self,
        architecture: str = "efficientnet-lite0",
        *,
        freeze_blocks: int = 12,
        head_dropout: float = 0.2,
        imagenet_weights: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = build_efficientnet_lite(architecture, imagenet_weights=imagenet_weights)
        block_count = len(self.backbone._blocks)
        if not 0 <= freeze_blocks <= block_count:
            raise ValueError(f"freeze_blocks must be between 0 and {block_count}, not {freeze_blocks}.")
        self.freeze_blocks = freeze_blocks
        self.head = PooledLogitHead(self.backbone._conv_head.out_channels, dropout=head_dropout)
        for parameter in self.trunk_parameters():
            parameter.requires_grad_(False)
        # The ImageNet classifier is never used; keeping it out of gradients and checkpoints.
        for parameter in self.backbone._fc.parameters():
            parameter.requires_grad_(False)

    def trunk_modules(self) -> list[nn.Module]:
        backbone = self.backbone
        return [backbone._conv_stem, backbone._bn0, *backbone._blocks[: self.freeze_blocks]]

    def tail_modules(self) -> list[nn.Module]:
        backbone = self.backbone
        return [*backbone._blocks[self.freeze_blocks :], backbone._conv_head, backbone._bn1, self.head]

    def trunk_parameters(self) -> list[nn.Parameter]:
        return [parameter for module in self.trunk_modules() for parameter in module.parameters()]

    def trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen features: the same for every fine-tuned model built on the same base and split point."""
        backbone = self.backbone
        x = backbone._swish(backbone._bn0(backbone._conv_stem(images)))
        for block in backbone._blocks[: self.freeze_blocks]:
            x = block(x, drop_connect_rate=self._drop_connect_rate(block))
        return x

    def tail_features(self, trunk_features: torch.Tensor) -> torch.Tensor:
        backbone = self.backbone
        x = trunk_features
        for block in backbone._blocks[self.freeze_blocks :]:
            x = block(x, drop_connect_rate=self._drop_connect_rate(block))
        return backbone._swish(backbone._bn1(backbone._conv_head(x)))

    def tail(self, trunk_features: torch.Tensor) -> torch.Tensor:
        """Phone log-odds, shape (N,), from trunk features."""
        return self.head(self.tail_features(trunk_features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(images))

    def _drop_connect_rate(self, block: nn.Module) -> float | None:
        # Same schedule as the library's extract_features: deeper blocks are dropped more often.
        rate = self.backbone._global_params.drop_connect_rate
        if not rate:
            return None
        index = list(self.backbone._blocks).index(block)
        return rate * float(index) / len(self.backbone._blocks)

    def set_train_mode(self) -> None:
        """Train the tail but keep every batch norm on its ImageNet statistics.

        Small CPU batches give noisy batch statistics; frozen statistics keep the trunk's cached features and
        the tail consistent between training and inference.
        """
        self.train()
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        for module in self.trunk_modules():
            module.eval()

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the tail's and head's parameters and buffers, nothing from the trunk."""
        prefixes = self._trained_prefixes()
        return {
            name: tensor.detach().clone()
            for name, tensor in self.state_dict().items()
            if any(name.startswith(prefix) for prefix in prefixes)
        }

    def load_trained_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint from :meth:`trained_state_dict`; refuses missing, extra or misshapen tensors."""
        expected = self.trained_state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"checkpoint does not match the network (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        for name, tensor in state.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise ValueError(
                    f"checkpoint tensor {name} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}"
                )
        self.load_state_dict(state, strict=False)

    def _trained_prefixes(self) -> tuple[str, ...]:
        blocks = [f"backbone._blocks.{index}." for index in range(self.freeze_blocks, len(self.backbone._blocks))]
        return (*blocks, "backbone._conv_head.", "backbone._bn1.", "head.")


def network_options(manifest: ModelManifest) -> dict[str, Any]:
    """The network's construction knobs as stored in a manifest's ``options``."""
    options = manifest.options
    return {
        "freeze_blocks": int(options.get("freeze_blocks", 12)),
        "head_dropout": float(options.get("head_dropout", 0.2)),
    }


class FineTunedClassifier(PhoneClassifier):
    """A checkpoint from ``ml_training`` on top of the packaged ImageNet trunk.

    Optional multi-scale inference (manifest option ``multiscale_grid`` > 0) also classifies overlapping crops
    and keeps the strongest phone evidence, which helps with phones that are small in the frame at a cost of
    ``1 + grid**2`` forward passes per picture.
    """

    def __init__(self, manifest: ModelManifest, model_dir: Path) -> None:
        super().__init__(manifest, model_dir)
        if WEIGHTS_FILE not in manifest.files:
            raise ModelLoadError(f"Model {manifest.version}: manifest does not list {WEIGHTS_FILE}.")
        expected_base = manifest.options.get("base_weights_sha256")
        if expected_base and sha256_file(imagenet_weights_path(manifest.architecture)) != expected_base:
            raise ModelLoadError(
                f"Model {manifest.version} was trained on different {manifest.architecture} ImageNet weights than "
                "the installed package provides; reinstall the pinned weights package or retrain."
            )
        self.network = FineTunedPhoneNet(manifest.architecture, **network_options(manifest))
        try:
            state = torch.load(model_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several unrelated types for a damaged file
            raise ModelLoadError(
                f"Model {manifest.version}: {WEIGHTS_FILE} is not a readable checkpoint ({error})."
            ) from error
        if not isinstance(state, dict):
            raise ModelLoadError(f"Model {manifest.version}: {WEIGHTS_FILE} does not hold a state dict.")
        try:
            self.network.load_trained_state_dict(state)
        except ValueError as error:
            raise ModelLoadError(f"Model {manifest.version}: {error}.") from error
        self.network.eval()
        self.multiscale_grid, self.multiscale_fraction = multiscale_settings(manifest.options)

    @property
    def views_per_image(self) -> int:
        return 1 + self.multiscale_grid**2

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.from_numpy(
            multiscale_views_array(
                images, self.manifest.preprocessing, grid=self.multiscale_grid, fraction=self.multiscale_fraction
            )
        )

    def phone_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.phone_logits_and_evidence(batch)[0]

    def phone_logits_and_evidence(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Phone log-odds per picture (N,) and the head's per-cell logits of every view (N * views, H, W).

        One pass gives both, so the exported graph (``inference/acceleration.py``) serves verdicts and heat maps
        alike; a picture's evidence map is its first view's cells (the whole picture).
        """
        cells = self.network.head.cell_map(self.network.tail_features(self.network.trunk(batch)))
        logits = self.network.head.pool(cells)
        return logits.view(-1, self.views_per_image).max(dim=1).values, cells

    @torch.inference_mode()
    def evidence_map(self, image: Image.Image) -> torch.Tensor:
        """The head's own per-cell phone logits for the picture (one forward pass, no gradients).

        These are exactly what the pooled verdict is made of, so the map shows what the model decided on; a
        multi-scale model's crops are laid over the whole picture's map (:func:`inference.evidence.merged_evidence`).
        """
        cells = self.network.head.cell_map(self.network.tail_features(self.network.trunk(self.preprocess([image]))))
        return torch.from_numpy(
            merged_evidence(cells.numpy(), image.size, grid=self.multiscale_grid, fraction=self.multiscale_fraction)
        )


register_model_kind(KIND, FineTunedClassifier)

"""The fine-tuned classifier's network: EfficientNet-Lite with its last blocks retrained and a pooled phone head.

Only the network lives here (what the exported graph and the export cache key depend on); the classifier that
runs it is :mod:`inference.finetuned`. Training builds exactly this network, so a checkpoint always fits it.

A checkpoint holds only what training changed (the unfrozen tail blocks and the head); the frozen early blocks
come from the ImageNet weights in the pip package. The manifest pins the checksum of that package file, so a
checkpoint is never combined with a different base than the one it was trained on.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from inference.backbone import build_efficientnet_lite
from inference.manifest import ModelManifest

if TYPE_CHECKING:
    from efficientnet_lite_pytorch import MBConvBlock

KIND = "fine-tuned"
WEIGHTS_FILE = "weights.pt"


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
        cells: torch.Tensor = self.cell_logits(self.dropout(features))
        return cells.squeeze(1)

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

    def trunk_parameters(self) -> list[nn.Parameter]:
        return [parameter for module in self.trunk_modules() for parameter in module.parameters()]

    def trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen features: the same for every fine-tuned model built on the same base and split point."""
        backbone = self.backbone
        x: torch.Tensor = backbone._swish(backbone._bn0(backbone._conv_stem(images)))
        for block in backbone._blocks[: self.freeze_blocks]:
            x = block(x, drop_connect_rate=self._drop_connect_rate(block))
        return x

    def tail_features(self, trunk_features: torch.Tensor) -> torch.Tensor:
        backbone = self.backbone
        x = trunk_features
        for block in backbone._blocks[self.freeze_blocks :]:
            x = block(x, drop_connect_rate=self._drop_connect_rate(block))
        features: torch.Tensor = backbone._swish(backbone._bn1(backbone._conv_head(x)))
        return features

    def tail(self, trunk_features: torch.Tensor) -> torch.Tensor:
        """Phone log-odds, shape (N,), from trunk features."""
        logits: torch.Tensor = self.head(self.tail_features(trunk_features))
        return logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(images))

    def _drop_connect_rate(self, block: MBConvBlock) -> float | None:
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

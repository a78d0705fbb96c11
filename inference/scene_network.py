"""The scene model's network: a frozen EfficientNet-Lite trunk and a small head that scores every grid cell.

Why this shape: people photograph phones in scenes (at a desk, at the ear, on a table), where the phone is a few
percent of the frame. A whole-picture classifier averages it away; a head that scores each cell of a 1/16-scale
grid, trained with the phone boxes, sees a phone a few cells wide and says where it is. The trunk (stem and the
first ``TRUNK_BLOCKS`` blocks, through the stride-16 stage) keeps its ImageNet weights, so training can compute its
features once per picture and train the head on the cache (2 CPU cores); the head adds context from a half-scale
branch so a phone at an ear or in a hand is judged with its surroundings.

``trainable_blocks`` (N) tunes the trunk's last N blocks with the head: the trunk is then split at the *boundary*
(the input of its first tuned block), training caches the features there, and checkpoints hold the tuned blocks
too (``trunk.blocks.<i>.*`` keys beside the head's). Tuned blocks keep their ImageNet batch-norm statistics.

``heads`` (K) is an ensemble of K heads on the one frozen trunk, each trained alone with its own seed: the network
averages their cells' log-odds and boxes, then pools as one head would. Why: one head's scene recall depends on
its seed (out of fold, v5's recipe gave 64%, 49% and 53% with seeds 0-2) and their average beat every one of them
(docs/experiments.md, "Seeds"); two more heads cost about 2 ms (docs/experiments.md, "Performance runs", Run S). A
single head's checkpoint keys have no prefix (models up to scene-lite0-v5); K heads' keys start with ``heads.<k>.``
(:func:`split_heads`, :func:`join_heads`).

Outputs, for a batch of N pictures at S x S (grid G = S / 16):
- ``phone_logits`` (N,): the picture's evidence, its verdict before calibration: the log-sum-exp of its cells'
  log-odds (``picture_pooling`` "lse"), or its best cell's ("max", models before scene-lite0-v4);
- ``cell_logits`` (N, G, G): every cell's evidence (the evidence map): its log-odds, raised by as much as the
  pooling raised the picture above its best cell, so the best cell's evidence is the picture's;
- ``cell_boxes`` (N, 4, G, G): for every cell, the box (x1, y1, x2, y2, normalised) of the phone it sees.

Boxes are predicted CenterNet-style, as the phone centre's offset from the cell centre and the phone's log width
and height in cells: a phone narrower than a cell still gets a box around its own centre.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from inference.backbone import build_efficientnet_lite
from inference.scene_options import SceneNetworkOptions

# Stem and blocks 0-10 of Lite0: the stride-16 stages end there (112 channels).
TRUNK_BLOCKS = 11
# Trunk blocks that may be tuned: blocks 8-10 form the last stride-16 stage (112 channels out).
MAX_TRAINABLE_BLOCKS = 3
# How a picture's evidence pools its cells' log-odds (SceneNetworkOptions.picture_pooling).
PICTURE_POOLINGS = ("max", "lse")
# Checkpoint keys of tuned trunk blocks start with this (the head's keys have no prefix, as in head-only models).
TRUNK_PREFIX = "trunk.blocks."
# Checkpoint keys of head k of several start with f"{HEADS_PREFIX}{k}.".
HEADS_PREFIX = "heads."
# The cell-objectness bias of a head, where the calibration shift is folded in (one per head).
OBJECTNESS_BIAS = "objectness.bias"
STRIDE = 16
# Phone centres within this many cells of the cell's centre; sizes exp(raw) cells. The clamps keep boxes finite.
OFFSET_RANGE = (-1.5, 1.5)
LOG_SIZE_RANGE = (-4.0, 4.0)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise convolution with a residual: cheap spatial context at full grid resolution."""

    def __init__(self, channels: int, *, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.residual = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.pointwise(F.relu6(self.depthwise(x))))
        return x + y if self.residual else y


class SceneHead(nn.Module):
    """Per-cell phone log-odds and box geometry from stride-16 trunk features."""

    def __init__(
        self, in_channels: int = 112, width: int = 96, dropout: float = 0.1, *, global_context: bool = False
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(dropout)
        self.reduce = nn.Conv2d(in_channels, width, 1)
        self.local = nn.Sequential(SeparableBlock(width), SeparableBlock(width))
        self.context = nn.Sequential(SeparableBlock(width, stride=2), SeparableBlock(width), SeparableBlock(width))
        # Optional: the whole picture's mean feature, projected and added to every cell, so a cell inside a phone
        # that fills the frame (a close-up, larger than a cell's receptive field) knows what the picture shows.
        self.global_context = nn.Conv2d(width, width, 1) if global_context else None
        self.mix = SeparableBlock(width)
        self.objectness = nn.Conv2d(width, 1, 1)
        self.geometry = nn.Conv2d(width, 4, 1)
        # Start out saying "no phone" everywhere (focal-loss practice): most cells of most pictures have none.
        assert self.objectness.bias is not None and self.geometry.bias is not None  # Conv2d has one by default
        nn.init.constant_(self.objectness.bias, -4.0)
        nn.init.zeros_(self.geometry.weight)
        nn.init.zeros_(self.geometry.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cell log-odds (N, G, G), box geometry in cells (N, 4, G, G): centre offset x, y; log width, height)."""
        x = F.relu6(self.reduce(self.dropout(features)))
        x = self.local(x)
        context = F.interpolate(self.context(x), size=x.shape[-2:], mode="nearest")
        if self.global_context is not None:
            context = context + F.relu6(self.global_context(x.mean(dim=(2, 3), keepdim=True)))
        x = self.mix(x + context)
        geometry = self.geometry(x)
        offsets = geometry[:, :2].clamp(*OFFSET_RANGE)
        log_sizes = geometry[:, 2:].clamp(*LOG_SIZE_RANGE)
        return self.objectness(x).squeeze(1), torch.cat([offsets, log_sizes], dim=1)


def cell_boxes(geometry: torch.Tensor) -> torch.Tensor:
    """Boxes (N, 4, G, G) as normalised corners (x1, y1, x2, y2) from each cell's predicted centre and size."""
    grid_h, grid_w = geometry.shape[-2:]
    centres_x = (torch.arange(grid_w, dtype=geometry.dtype) + 0.5).view(1, 1, grid_w) + geometry[:, 0]
    centres_y = (torch.arange(grid_h, dtype=geometry.dtype) + 0.5).view(1, grid_h, 1) + geometry[:, 1]
    half_w, half_h = torch.exp(geometry[:, 2]) / 2, torch.exp(geometry[:, 3]) / 2
    corners = [(centres_x - half_w) / grid_w, (centres_y - half_h) / grid_h]
    corners += [(centres_x + half_w) / grid_w, (centres_y + half_h) / grid_h]
    return torch.stack(corners, dim=1).clamp(0.0, 1.0)


class ScenePhoneNet(nn.Module):
    """Lite trunk (its last ``trainable_blocks`` blocks tuned, the rest frozen) + :class:`SceneHead`; ``forward``
    gives picture logits, cell logits and cell boxes."""

    def __init__(
        self,
        architecture: str = "efficientnet-lite0",
        *,
        head_width: int = 96,
        head_dropout: float = 0.1,
        imagenet_weights: bool = True,
        trainable_blocks: int = 0,
        global_context: bool = False,
        picture_pooling: str = "max",
        heads: int = 1,
    ) -> None:
        super().__init__()
        check_heads(heads, trainable_blocks)
        if not 0 <= trainable_blocks <= MAX_TRAINABLE_BLOCKS:
            raise ValueError(f"trainable_blocks must be between 0 and {MAX_TRAINABLE_BLOCKS}; got {trainable_blocks}")
        if picture_pooling not in PICTURE_POOLINGS:
            raise ValueError(f"picture_pooling must be one of {', '.join(PICTURE_POOLINGS)}; got {picture_pooling!r}")
        self.picture_pooling = picture_pooling
        self.trainable_blocks = trainable_blocks
        self.boundary = TRUNK_BLOCKS - trainable_blocks
        self.backbone = build_efficientnet_lite(architecture, imagenet_weights=imagenet_weights)
        # Only the trunk is used; the later blocks and the ImageNet head are dropped from the graph and checkpoints.
        self.backbone._blocks = self.backbone._blocks[:TRUNK_BLOCKS]
        for name in ("_conv_head", "_bn1", "_fc"):
            setattr(self.backbone, name, nn.Identity())
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        for block in self.tuned_blocks():
            for parameter in block.parameters():
                parameter.requires_grad_(True)
        channels = self.backbone._blocks[-1]._project_conv.out_channels
        self.heads = nn.ModuleList(
            SceneHead(channels, head_width, head_dropout, global_context=global_context) for _ in range(heads)
        )

    @classmethod
    def from_options(
        cls, options: SceneNetworkOptions, architecture: str = "efficientnet-lite0", *, imagenet_weights: bool = True
    ) -> ScenePhoneNet:
        """An untrained network of a manifest's shape (the trunk with its packaged ImageNet weights unless told not
        to), ready for its checkpoint."""
        return cls(
            architecture,
            head_width=options.head_width,
            imagenet_weights=imagenet_weights,
            trainable_blocks=options.trainable_blocks,
            global_context=options.global_context,
            picture_pooling=options.picture_pooling,
            heads=options.heads,
        )

    def options(self) -> SceneNetworkOptions:
        """This network's shape, as its manifest records it."""
        first = self.first_head()
        return SceneNetworkOptions(
            head_width=first.reduce.out_channels,
            trainable_blocks=self.trainable_blocks,
            global_context=first.global_context is not None,
            picture_pooling=self.picture_pooling,
            heads=len(self.heads),
        )

    def scene_heads(self) -> list[SceneHead]:
        """The heads, typed (``nn.ModuleList`` yields plain modules)."""
        return [cast(SceneHead, head) for head in self.heads]

    def first_head(self) -> SceneHead:
        """Head 0: the only one while training (heads are trained one at a time, then joined)."""
        return self.scene_heads()[0]

    def tuned_blocks(self) -> list[nn.Module]:
        return list(self.backbone._blocks[self.boundary :])

    def frozen_trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Features at the boundary (stem and the frozen blocks): what training computes once per view and caches."""
        backbone = self.backbone
        x: torch.Tensor = backbone._swish(backbone._bn0(backbone._conv_stem(images)))
        for block in backbone._blocks[: self.boundary]:
            x = block(x)
        return x

    def tuned_trunk(self, features: torch.Tensor) -> torch.Tensor:
        """The tuned blocks, from boundary features to the stride-16 features the head reads."""
        for block in self.tuned_blocks():
            features = block(features)
        return features

    def trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Stride-16 features of the whole trunk."""
        return self.tuned_trunk(self.frozen_trunk(images))

    def pool(self, cells: torch.Tensor) -> torch.Tensor:
        """The pictures' evidence (N,) from their cells' log-odds (N, G, G).

        Why log-sum-exp: it is a soft "any cell", and it grows with every cell that sees something phone-like, so a
        CCTV frame with several small phones, each barely above the background, outscores a frame with one stray
        peak. Out of fold, scene-lite0-v4 (log-sum-exp) ranks scenes better than v3 (best cell) did: ROC-AUC 0.908
        against 0.874, office CCTV 0.771 against 0.688 (docs/model.md).
        """
        flat = cells.flatten(1)
        return torch.logsumexp(flat, dim=1) if self.picture_pooling == "lse" else flat.max(dim=1).values

    def from_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(picture evidence, cell evidence, cell boxes) from stride-16 features.

        Several heads: their cells' log-odds and their boxes' corners are averaged first, and the average is pooled
        as one head's cells are. With log-sum-exp pooling every cell's evidence is raised by what pooling added
        above the best cell: the cells keep their order and the heat map's best cell shows exactly the picture's
        probability (boxes take the lift off again to score their own cell: :func:`inference.boxes.own_evidence`).
        With "max" the cells are the evidence as they are (the graph of the models before pooling was an option).
        """
        outputs = [head(features) for head in self.heads]
        cells = _mean([head_cells for head_cells, _ in outputs])
        boxes = _mean([cell_boxes(geometry) for _, geometry in outputs])
        picture = self.pool(cells)
        if self.picture_pooling == "lse":
            cells = cells + (picture - cells.flatten(1).max(dim=1).values).view(-1, 1, 1)
        return picture, cells, boxes

    def from_boundary(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` from cached boundary features."""
        return self.from_features(self.tuned_trunk(features))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.from_features(self.trunk(images))

    def set_train_mode(self) -> None:
        """Train the head (dropout on); the whole trunk, tuned blocks included, keeps eval-mode batch-norm with its
        ImageNet statistics (batches of 32 views are too small and too alike to re-estimate them)."""
        self.train()
        self.backbone.eval()

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the heads and the tuned blocks (the rest is the pip package's ImageNet
        weights)."""
        state = join_heads([dict(head.state_dict()) for head in self.heads])
        for index, block in zip(range(self.boundary, TRUNK_BLOCKS), self.tuned_blocks(), strict=True):
            state.update({f"{TRUNK_PREFIX}{index}.{name}": value for name, value in block.state_dict().items()})
        return {name: tensor.detach().clone() for name, tensor in state.items()}

    def load_trained_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load :meth:`trained_state_dict` output; refuses missing, extra or misshapen tensors with a reason."""
        head_state = {name: value for name, value in state.items() if not name.startswith(TRUNK_PREFIX)}
        tuned = {name for name in state if name.startswith(TRUNK_PREFIX)}
        expected = {name for name in self.trained_state_dict() if name.startswith(TRUNK_PREFIX)}
        if tuned != expected:
            raise ValueError(
                f"checkpoint tunes trunk blocks {_block_numbers(tuned)}, this network tunes {_block_numbers(expected)}"
            )
        head_states = split_heads(head_state)
        if len(head_states) != len(self.heads):
            raise ValueError(f"checkpoint has {len(head_states)} head(s), this network {len(self.heads)}")
        try:
            for head, state_of_head in zip(self.heads, head_states, strict=True):
                head.load_state_dict(state_of_head, strict=True)
            for index, block in zip(range(self.boundary, TRUNK_BLOCKS), self.tuned_blocks(), strict=True):
                prefix = f"{TRUNK_PREFIX}{index}."
                block.load_state_dict(
                    {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)},
                    strict=True,
                )
        except RuntimeError as error:
            raise ValueError(f"checkpoint does not match the scene network: {error}") from error


def _mean(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The heads' average; one head's output as it is, so a one-head model's graph is what it was before heads."""
    return tensors[0] if len(tensors) == 1 else torch.stack(list(tensors)).mean(dim=0)


def check_heads(heads: int, trainable_blocks: int) -> None:
    """Refuse a head count the network cannot have, with the reason (the training recipe checks with this too)."""
    if heads < 1:
        raise ValueError(f"heads must be at least 1; got {heads}")
    if heads > 1 and trainable_blocks:
        raise ValueError(
            "heads > 1 needs trainable_blocks 0 (the heads share one frozen trunk): set heads 1 to tune blocks."
        )


def split_heads(state: Mapping[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """A checkpoint's head weights, one state per head in order; other keys (tuned trunk blocks) go with each.

    A single head's keys have no prefix (every model up to scene-lite0-v5); K heads' start with ``heads.<k>.``.
    """
    shared = {name: value for name, value in state.items() if name.startswith(TRUNK_PREFIX)}
    prefixed = [name for name in state if name.startswith(HEADS_PREFIX)]
    if not prefixed:
        return [dict(state)]
    count = 1 + max(int(name[len(HEADS_PREFIX) :].split(".")[0]) for name in prefixed)
    states: list[dict[str, torch.Tensor]] = [dict(shared) for _ in range(count)]
    for name in prefixed:
        index, rest = name[len(HEADS_PREFIX) :].split(".", 1)
        states[int(index)][rest] = state[name]
    unplaced = set(state) - set(prefixed) - set(shared)
    if unplaced:
        raise ValueError(f"checkpoint mixes prefixed and unprefixed head weights: {', '.join(sorted(unplaced))}")
    return states


def join_heads(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One checkpoint from per-head states (:func:`split_heads` reversed): a single head's keys stay unprefixed,
    so a one-head model's checkpoint is what it always was. Tuned trunk keys are kept once, from the first."""
    if len(states) == 1:
        return dict(states[0])
    joined = {name: value for name, value in states[0].items() if name.startswith(TRUNK_PREFIX)}
    for index, state in enumerate(states):
        for name, value in state.items():
            if not name.startswith(TRUNK_PREFIX):
                joined[f"{HEADS_PREFIX}{index}.{name}"] = value
    return joined


def _block_numbers(names: set[str]) -> list[int]:
    return sorted({int(name[len(TRUNK_PREFIX) :].split(".")[0]) for name in names})

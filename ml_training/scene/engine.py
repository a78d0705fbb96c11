"""The scene head's training loop and scoring, on cached trunk features.

The bank holds the features at the network's boundary (the input of its first tuned trunk block): with
``trainable_blocks`` > 0 each step runs the tuned blocks and the head on them and trains both, the blocks at
``trunk_learning_rate_scale`` times the head's learning rate (they start from ImageNet weights, the head from
scratch).

Loss, per view:
- cells: sigmoid focal loss on every cell with a target (phones' centres positive, the rest of a boxed or
  phone-free picture negative, cells at a phone's edge ignored), normalised by the number of positive cells;
- picture: binary cross-entropy on the picture's evidence, for every view (this is what trains phone pictures
  without boxes, and it is the verdict the product shows): the view's cells pooled as the network pools them or,
  for phone views as ``phone_view_loss`` chooses, the best cell (the same with "max" pooling; a lower bound of
  "lse");
- boxes: L1 on the centre offset and log size at the positive cells.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from inference.scene_network import TRUNK_PREFIX, ScenePhoneNet, join_heads, split_heads
from ml_training.scene.config import TrainSettings
from ml_training.scene.targets import IGNORE
from ml_training.scene.views import CLEAN, FeatureBank

logger = logging.getLogger(__name__)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Summed sigmoid focal loss (Lin et al., 2017) over cells whose target is 0 or 1."""
    known = targets != IGNORE
    logits, targets = logits[known], targets[known]
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_true = torch.exp(-bce)
    return ((1 - p_true) ** gamma * bce).sum()


def batch_loss(network: ScenePhoneNet, bank: FeatureBank, views: torch.Tensor, settings: TrainSettings) -> torch.Tensor:
    features = bank.features[views].float().contiguous(memory_format=torch.channels_last)
    cells, geometry = network.first_head()(network.tuned_trunk(features))
    objectness, target_geometry = bank.objectness[views], bank.geometry[views]
    positives = objectness == 1
    cell_loss = focal_loss(cells, objectness) / max(1, int(positives.sum()))
    # The verdict pools the cells (network.pool). A phone-free view is trained on exactly that, and by default
    # ("pooled", scene-lite0-v5) so is a phone view: scene phones found rose from 38% to 64% and phones from a
    # source left out of training ranked better, but the evidence spreads over the phone's surroundings, so fewer
    # best boxes hold the phone (66% to 47%). "best-cell" (v1-v4) trains a phone view's best cell, a lower bound
    # of log-sum-exp pooling (docs/experiments.md).
    targets = bank.targets[views]
    pooled = network.pool(cells)
    if settings.phone_view_loss == "pooled":
        picture_logits = pooled
    else:
        picture_logits = torch.where(targets == 1, cells.flatten(1).max(dim=1).values, pooled)
    picture_loss = F.binary_cross_entropy_with_logits(picture_logits, targets.float())
    if positives.any():
        predicted = geometry.permute(0, 2, 3, 1)[positives]
        wanted = target_geometry.permute(0, 2, 3, 1)[positives]
        box_loss = F.smooth_l1_loss(predicted, wanted, beta=0.1)
    else:
        box_loss = cells.sum() * 0.0
    return cell_loss + settings.picture_loss_weight * picture_loss + settings.box_loss_weight * box_loss


def epoch_draws(
    pictures: Sequence[int],
    views_of: dict[int, list[int]],
    scene: set[int],
    settings: TrainSettings,
    rng: random.Random,
) -> list[int]:
    """One random view per picture (scene pictures ``scene_repeats`` times), shuffled."""
    draws = []
    for picture in pictures:
        for _ in range(settings.scene_repeats if picture in scene else 1):
            draws.append(rng.choice(views_of[picture]))
    rng.shuffle(draws)
    return draws


def train_head(
    bank: FeatureBank,
    train_pictures: Sequence[int],
    scene_pictures: set[int],
    settings: TrainSettings,
    *,
    initial_head: dict[str, torch.Tensor] | None = None,
) -> ScenePhoneNet:
    """One head (and the tuned trunk blocks) trained on every view of ``train_pictures``, from ``initial_head`` when
    given (see :func:`warm_start_state`), else a fresh head and ImageNet blocks; cosine learning-rate decay, fixed
    epoch count. ``settings.heads`` is not read here: :func:`train_heads` calls this once per head."""
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    # The frozen part of the trunk is never run here (the bank holds its output): ImageNet weights only when tuned.
    network = ScenePhoneNet(
        imagenet_weights=settings.trainable_blocks > 0,
        trainable_blocks=settings.trainable_blocks,
        global_context=bool(settings.global_context),
        picture_pooling=settings.picture_pooling,
    )
    if initial_head is not None:
        network.load_trained_state_dict(warm_start_state(network, initial_head))
    # Channels-last halves a tuned block's step on this CPU (0.9 s against 1.9 s for 32 views at 448 px,
    # docs/experiments.md); the weights go back to the default layout before anyone saves or exports them.
    network.to(memory_format=torch.channels_last)
    wanted = set(train_pictures)
    views_of: dict[int, list[int]] = {}
    for view, picture in enumerate(bank.picture.tolist()):
        if picture in wanted:
            views_of.setdefault(picture, []).append(view)
    trunk_parameters = [parameter for block in network.tuned_blocks() for parameter in block.parameters()]
    groups = [{"params": list(network.first_head().parameters()), "lr": settings.learning_rate}]
    if trunk_parameters:
        groups.append({"params": trunk_parameters, "lr": settings.learning_rate * settings.trunk_learning_rate_scale})
    optimiser = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(
        sum(settings.scene_repeats if p in scene_pictures else 1 for p in views_of) / settings.batch_size
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, settings.epochs * steps_per_epoch))
    for epoch in range(settings.epochs):
        network.set_train_mode()
        draws = epoch_draws(sorted(views_of), views_of, scene_pictures, settings, rng)
        total = 0.0
        for start in range(0, len(draws), settings.batch_size):
            views = torch.tensor(draws[start : start + settings.batch_size])
            loss = batch_loss(network, bank, views, settings)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(views)
        logger.info("epoch %2d/%d  loss %.4f", epoch + 1, settings.epochs, total / max(1, len(draws)))
    network.to(memory_format=torch.contiguous_format)
    network.eval()
    return network


def train_heads(
    bank: FeatureBank,
    train_pictures: Sequence[int],
    scene_pictures: set[int],
    settings: TrainSettings,
    *,
    initial_head: dict[str, torch.Tensor] | None = None,
) -> ScenePhoneNet:
    """``settings.heads`` heads, each trained alone by :func:`train_head` on the same views with seed ``settings.seed
    + k``, joined into one network that averages them (``ScenePhoneNet``, ``heads``).

    Head k warm-starts from ``initial_head``'s head k, or from its last head when it has fewer (a one-head model
    lends its head to all of them; their training draws still differ).
    """
    initial_heads = split_heads(initial_head) if initial_head is not None else []
    trained = []
    for index in range(settings.heads):
        if settings.heads > 1:
            logger.info("head %d of %d (seed %d)", index + 1, settings.heads, settings.seed + index)
        start = initial_heads[min(index, len(initial_heads) - 1)] if initial_heads else None
        head_settings = dataclasses.replace(settings, seed=settings.seed + index)
        trained.append(train_head(bank, train_pictures, scene_pictures, head_settings, initial_head=start))
    if len(trained) == 1:
        return trained[0]
    network = ScenePhoneNet(
        imagenet_weights=False,
        global_context=bool(settings.global_context),
        picture_pooling=settings.picture_pooling,
        heads=len(trained),
    )
    network.load_trained_state_dict(join_heads([head.trained_state_dict() for head in trained]))
    network.eval()
    return network


@torch.inference_mode()
def score_views(
    network: ScenePhoneNet, bank: FeatureBank, views: torch.Tensor, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(picture logits (V,), cell logits (V, G, G), cell boxes (V, 4, G, G)) for the given views."""
    network.eval()
    parts = [
        network.from_boundary(bank.features[views[i : i + batch_size]].float())
        for i in range(0, len(views), batch_size)
    ]
    logits, cells, boxes = (torch.cat([part[k] for part in parts]) for k in range(3))
    return logits, cells, boxes


def warm_start_state(network: ScenePhoneNet, initial: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state to start ``network`` from: ``initial``'s head, and its tuned blocks when it tunes the same ones.

    Head layers only one of the two has (``global_context``) are dropped or start fresh, and the log says so.

    A checkpoint that tunes other blocks (a head-only model warm-starting a tuned one, or the reverse) lends its
    head only; the network's tuned blocks then start from their ImageNet weights, and the log says so.
    """
    own = network.trained_state_dict()
    initial_head = {name: value for name, value in initial.items() if not name.startswith(TRUNK_PREFIX)}
    own_head = {name for name in own if not name.startswith(TRUNK_PREFIX)}
    head = {name: value for name, value in initial_head.items() if name in own_head}
    if own_head != initial_head.keys():
        logger.info(
            "warm start: head layers only one of the two has start fresh or are dropped: %s",
            ", ".join(sorted(own_head ^ initial_head.keys())),
        )
    initial_trunk = {name for name in initial if name.startswith(TRUNK_PREFIX)}
    if initial_trunk == {name for name in own if name.startswith(TRUNK_PREFIX)}:
        return {**own, **head, **{name: initial[name] for name in initial_trunk}}
    logger.info(
        "warm start: the initial checkpoint tunes %d trunk tensors, this network %d; only its head is reused",
        len(initial_trunk),
        len(own) - len(network.first_head().state_dict()),
    )
    return {**own, **head}


def clean_views(bank: FeatureBank, pictures: Sequence[int]) -> torch.Tensor:
    """The clean view of each picture, in the order given."""
    index = bank.clean_view_of(int(bank.picture.max()) + 1)
    chosen = index[torch.tensor(list(pictures), dtype=torch.long)]
    if (chosen < 0).any() or not bool((bank.kind[chosen] == CLEAN).all()):
        raise ValueError("Every picture needs a clean view in the bank.")
    return chosen

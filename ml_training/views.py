"""Rendering every picture's training views once and caching the frozen trunk's features for them.

The trunk (stem and early blocks) is frozen, so its output for a given view never changes: computing it once
per view and training the tail on the cache makes each epoch several times cheaper on a CPU. Augmentation
variety comes from several random views per picture, of which each epoch draws one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from PIL import Image

from inference.finetuned_network import FineTunedPhoneNet
from inference.preprocessing import PreprocessConfig, crop_arrays, image_to_tensor
from ml_training.augment import AugmentConfig, augmented_tensor, build_augmentation
from ml_training.composites import (
    DEFAULT_COMPOSITES,
    HAND_COMPOSITES,
    VARIED_COMPOSITES,
    CompositeConfig,
    CompositeFactory,
    HandCompositeFactory,
    plain_background_cutouts,
)
from ml_training.data import Sample

REAL, COMPOSITE_PHONE, COMPOSITE_DISTRACTOR = "real", "composite_phone", "composite_distractor"
# Composite families (an item's ``source``): v1's pasted cut-outs keep the kind names as their source; the varied
# cut-outs (darker, edge-on, partly hidden) and the small in-hand patches are reported on their own.
VARIED_PHONE, VARIED_DISTRACTOR = "varied_phone", "varied_distractor"
HAND_PHONE, HAND_DISTRACTOR = "hand_phone", "hand_distractor"


def clean_view(image: Image.Image, preprocess: PreprocessConfig) -> torch.Tensor:
    """The un-augmented view used for validation and test: inference's own preprocessing, nothing else."""
    return image_to_tensor(image, preprocess)


def clean_crops(image: Image.Image, preprocess: PreprocessConfig, grid: int, fraction: float) -> list[torch.Tensor]:
    """The overlapping crops multi-scale inference adds to the whole picture, preprocessed exactly as it does."""
    return [torch.from_numpy(array) for array in crop_arrays(image, preprocess, grid=grid, fraction=fraction)]


@dataclass
class ViewBank:
    """Trunk features for every item (real picture or composite), plus its label, fold and kind.

    ``views`` is (N, K, C, H, W): K augmented views for training. ``clean`` is (N, C, H, W): the picture as
    inference sees it (for a composite: one more composite made the same way, never augmented). ``crops`` is
    (N, G, C, H, W) or None: the G overlapping crops of the clean picture that multi-scale inference also scores.
    """

    views: torch.Tensor
    clean: torch.Tensor
    targets: torch.Tensor
    folds: torch.Tensor
    kinds: list[str]
    sample_indices: list[int | None]
    sources: list[str] = field(default_factory=list)
    crops: torch.Tensor | None = None

    def select(self, folds: Sequence[int]) -> torch.Tensor:
        """Item indices whose fold is in ``folds``."""
        return torch.nonzero(torch.isin(self.folds, torch.tensor(list(folds)))).flatten()


@dataclass(frozen=True)
class _Item:
    """One row of the bank before rendering: how to render it and what it is."""

    render: Callable[[], list[torch.Tensor]]
    target: int
    fold: int
    kind: str
    sample_index: int | None
    source: str


def _same(image: Image.Image) -> Image.Image:
    return image


def _render_item(
    make: Callable[[], Image.Image],
    augment: Callable[[Image.Image], torch.Tensor],
    clean: Callable[[Image.Image], torch.Tensor],
    crops: Callable[[Image.Image], list[torch.Tensor]],
    views_per_image: int,
    *,
    fresh: bool,
) -> list[torch.Tensor]:
    """K augmented tensors, one clean tensor, then the clean picture's crops; ``fresh`` makes a new picture per
    view (composites)."""
    picture = make()
    # A composite's clean picture is always its generator's second one, whatever the number of views, so the
    # held-out composites are the same pictures for every ``views_per_image`` (and the same as v1's).
    clean_picture = make() if fresh else picture
    tensors = [augment(make() if fresh and index else picture) for index in range(views_per_image)]
    tensors.append(clean(clean_picture))
    tensors.extend(crops(clean_picture))
    return tensors


def build_view_bank(
    network: FineTunedPhoneNet,
    samples: Sequence[Sample],
    images: Sequence[Image.Image],
    folds: Sequence[int],
    *,
    preprocess: PreprocessConfig,
    augment: AugmentConfig,
    views_per_image: int,
    composites_per_fold: int,
    composite_config: CompositeConfig = DEFAULT_COMPOSITES,
    varied_composites_per_fold: int = 0,
    hand_composites_per_fold: int = 0,
    multiscale_grid: int = 0,
    multiscale_fraction: float = 0.6,
    seed: int = 0,
    batch_size: int = 64,
    log: Callable[[str], None] = print,
) -> ViewBank:
    """Render views of the real pictures and of ``composites_per_fold`` phone and distractor composites per fold.

    Composites of fold f are made only from fold f's pictures (cut-outs from its phones, scenes from its
    not_phone pictures), so a held-out fold's composites share no picture with the training folds.

    ``varied_composites_per_fold`` more pairs use :data:`VARIED_COMPOSITES` (darker, edge-on, partly hidden), and
    ``hand_composites_per_fold`` pairs paste small patches of whole pictures from the sources that have both
    labels (hands holding a phone / hands holding a look-alike). Both draw from their own random generators, so
    adding them leaves the v1 composites (and so the held-out composite test sets) unchanged.

    With ``multiscale_grid`` > 0 every item also keeps the trunk features of its clean picture's
    ``multiscale_grid``**2 crops, so validation and test are scored the way multi-scale inference scores a picture.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    crop_aug = build_augmentation(augment, preprocess, crop=True)
    plain_aug = build_augmentation(augment, preprocess, crop=False)

    def augmented(transform: Callable) -> Callable[[Image.Image], torch.Tensor]:
        return lambda image: augmented_tensor(image, transform, preprocess)

    def clean(image: Image.Image) -> torch.Tensor:
        return clean_view(image, preprocess)

    def crops(image: Image.Image) -> list[torch.Tensor]:
        return clean_crops(image, preprocess, multiscale_grid, multiscale_fraction)

    jobs: list[_Item] = []
    for index, (sample, image) in enumerate(zip(samples, images, strict=True)):
        render = partial(
            _render_item, partial(_same, image), augmented(crop_aug), clean, crops, views_per_image, fresh=False
        )
        jobs.append(_Item(render, sample.target, folds[index], REAL, index, sample.source))

    def add_pairs(factory, count: int, generator: random.Random, fold: int, sources: tuple[str, str]) -> None:
        for _ in range(count):
            for kind, make, target, source in (
                (COMPOSITE_PHONE, factory.phone, 1, sources[0]),
                (COMPOSITE_DISTRACTOR, factory.distractor, 0, sources[1]),
            ):
                # Each item has its own generator, so its pictures do not depend on rendering order.
                make_one = partial(make, random.Random(generator.random()))
                render = partial(
                    _render_item, make_one, augmented(plain_aug), clean, crops, views_per_image, fresh=True
                )
                jobs.append(_Item(render, target, fold, kind, None, source))

    any_composites = composites_per_fold or varied_composites_per_fold or hand_composites_per_fold
    varied_rng, hand_rng = random.Random(f"varied-{seed}"), random.Random(f"hand-{seed}")
    # Sources with both labels hold look-alikes of their own phone pictures (hands holding either).
    by_label: dict[int, set[str]] = {0: set(), 1: set()}
    for sample in samples:
        by_label[sample.target].add(sample.source)
    hand_sources = by_label[0] & by_label[1]
    for fold in sorted(set(folds)) if any_composites else []:
        members = [i for i, f in enumerate(folds) if f == fold]
        phone_images = [images[i] for i in members if samples[i].target == 1]
        cutouts = plain_background_cutouts(phone_images)
        scenes = [images[i] for i in members if samples[i].target == 0]
        if not cutouts or not scenes:
            log(f"fold {fold}: no phone cut-outs or scenes, no composites")
            continue
        factory = CompositeFactory(cutouts, scenes, scenes, composite_config)
        log(f"fold {fold}: {len(cutouts)} phone cut-outs, {len(factory.distractor_cutouts)} distractor cut-outs")
        add_pairs(factory, composites_per_fold, rng, fold, (COMPOSITE_PHONE, COMPOSITE_DISTRACTOR))
        if varied_composites_per_fold:
            varied = CompositeFactory(
                cutouts, scenes, scenes, VARIED_COMPOSITES, distractor_cutouts=factory.distractor_cutouts
            )
            add_pairs(varied, varied_composites_per_fold, varied_rng, fold, (VARIED_PHONE, VARIED_DISTRACTOR))
        in_hand = [images[i] for i in members if samples[i].target == 1 and samples[i].source in hand_sources]
        look_alikes = [images[i] for i in members if samples[i].target == 0 and samples[i].source in hand_sources]
        if hand_composites_per_fold and in_hand and look_alikes:
            hands = HandCompositeFactory(in_hand, look_alikes, scenes, HAND_COMPOSITES)
            log(f"fold {fold}: {len(in_hand)} in-hand phone pictures, {len(look_alikes)} look-alike pictures")
            add_pairs(hands, hand_composites_per_fold, hand_rng, fold, (HAND_PHONE, HAND_DISTRACTOR))
    views, cleans, crop_features = [], [], []
    per_item = views_per_image + 1 + multiscale_grid**2
    for features in _trunk_features_in_batches(network, (job.render() for job in jobs), per_item, batch_size):
        views.append(features[:, :views_per_image])
        cleans.append(features[:, views_per_image])
        crop_features.append(features[:, views_per_image + 1 :])
        if len(views) % 10 == 0:
            log(f"views: {sum(len(v) for v in views)}/{len(jobs)} items")
    return ViewBank(
        views=torch.cat(views),
        clean=torch.cat(cleans),
        targets=torch.tensor([job.target for job in jobs], dtype=torch.float32),
        folds=torch.tensor([job.fold for job in jobs]),
        kinds=[job.kind for job in jobs],
        sample_indices=[job.sample_index for job in jobs],
        sources=[job.source for job in jobs],
        crops=torch.cat(crop_features) if multiscale_grid else None,
    )


@torch.inference_mode()
def _trunk_features_in_batches(
    network: FineTunedPhoneNet, items: Iterator[list[torch.Tensor]], per_item: int, batch_size: int
) -> Iterator[torch.Tensor]:
    """Trunk features, (items, per_item, C, H, W) per chunk, for a stream of per-item tensor lists."""
    network.eval()
    items_per_batch = max(1, batch_size // per_item)
    chunk: list[list[torch.Tensor]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == items_per_batch:
            yield _run_trunk(network, chunk, per_item)
            chunk = []
    if chunk:
        yield _run_trunk(network, chunk, per_item)


def _run_trunk(network: FineTunedPhoneNet, chunk: list[list[torch.Tensor]], per_item: int) -> torch.Tensor:
    batch = torch.stack([tensor for item in chunk for tensor in item])
    features = network.trunk(batch)
    return features.view(len(chunk), per_item, *features.shape[1:]).clone()

"""Training views of every picture and the frozen trunk's features for them, computed once and cached.

Each picture gives a clean view (inference's own preprocessing: the whole picture squeezed to S x S) used to
score it, and augmented views (crop, flip, colour) used to train. Phone-free scenes also get **pasted** views:
a real phone cut from a boxed scene picture of the same fold, rescaled and pasted at a random place, which
teaches "a small phone among other things" far better than product cut-outs did (docs/experiments.md).
Donors come from the recipient's own fold, so a fold's test pictures never lend phones to its training views.

The trunk up to the boundary (the input of its first tuned block; the trunk's end when none is tuned) is frozen,
so its output for a view never changes; the bank holds it in float16 (175 KB a view at 448 px for a boundary in the
112-channel stage) and the head (and tuned blocks) train on it for many epochs at a fraction of a full forward pass.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from inference.preprocessing import image_to_array
from inference.scene_network import ScenePhoneNet
from ml_training.scene.config import (
    MAX_PASTE_ENLARGEMENT,
    SMALLEST_SPREAD_WIDTH,
    UNBOXED_PHONE_MIN_CROP_AREA,
    ViewConfig,
)
from ml_training.scene.data import BoxCorners, SceneSample
from ml_training.scene.targets import cell_targets

logger = logging.getLogger(__name__)

CLEAN, AUGMENTED, PASTED = 0, 1, 2
# Sources whose phone-free pictures receive pasted phones: scenes, and everyday photos (ImageNet classes).
PASTE_RECIPIENT_SOURCES = frozenset({"office-cctv", "webcam-held", "imagenet-sample"})


@dataclass
class FeatureBank:
    """Every view's trunk features and targets; ``picture`` maps a view to its sample, ``kind`` to its recipe."""

    features: torch.Tensor  # (V, C, G, G) float16
    objectness: torch.Tensor  # (V, G, G): 1, 0 or IGNORE
    geometry: torch.Tensor  # (V, 4, G, G)
    targets: torch.Tensor  # (V,): 1 = the view shows a phone
    picture: torch.Tensor  # (V,) sample index
    kind: torch.Tensor  # (V,) CLEAN, AUGMENTED or PASTED

    def clean_view_of(self, pictures: int) -> torch.Tensor:
        """Index of each picture's clean view (the one scored for figures), in sample order."""
        index = torch.full((pictures,), -1, dtype=torch.long)
        clean = (self.kind == CLEAN).nonzero().flatten()
        index[self.picture[clean]] = clean
        return index


@dataclass(frozen=True)
class Donor:
    """A real phone to paste: its crop (with a margin of background) and the phone's box inside the crop."""

    crop: Image.Image
    box_in_crop: BoxCorners
    width: float  # the phone's width as a fraction of its own picture's width
    fold: int


def donors_from(samples: Sequence[SceneSample], images: Sequence[Image.Image], folds: Sequence[int]) -> list[Donor]:
    """Every boxed phone of every scene picture, cut with a margin of 20% of its size on each side."""
    donors = []
    for sample, image, fold in zip(samples, images, folds, strict=True):
        for x1, y1, x2, y2 in sample.boxes:
            width, height = image.size
            margin_x, margin_y = 0.2 * (x2 - x1), 0.2 * (y2 - y1)
            left, top = max(0.0, x1 - margin_x), max(0.0, y1 - margin_y)
            right, bottom = min(1.0, x2 + margin_x), min(1.0, y2 + margin_y)
            crop = image.crop((round(left * width), round(top * height), round(right * width), round(bottom * height)))
            if min(crop.size) < 4:
                continue
            span_x, span_y = right - left, bottom - top
            inside = ((x1 - left) / span_x, (y1 - top) / span_y, (x2 - left) / span_x, (y2 - top) / span_y)
            donors.append(Donor(crop=crop, box_in_crop=inside, width=x2 - x1, fold=fold))
    return donors


def random_crop(
    image: Image.Image,
    boxes: tuple[BoxCorners, ...],
    rng: random.Random,
    *,
    must_keep_a_box: bool,
    min_area: float,
) -> tuple[Image.Image, tuple[BoxCorners, ...]]:
    """A crop of ``min_area``-100% of the area; boxes whose centre falls outside are dropped, the rest clipped."""
    for _ in range(10):
        scale, aspect = rng.uniform(min_area, 1.0), rng.uniform(0.75, 1.33)
        crop_w, crop_h = min(1.0, (scale * aspect) ** 0.5), min(1.0, (scale / aspect) ** 0.5)
        left, top = rng.uniform(0, 1 - crop_w), rng.uniform(0, 1 - crop_h)
        kept = []
        for x1, y1, x2, y2 in boxes:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            if left <= cx <= left + crop_w and top <= cy <= top + crop_h:
                clipped = (
                    max(0.0, (x1 - left) / crop_w),
                    max(0.0, (y1 - top) / crop_h),
                    min(1.0, (x2 - left) / crop_w),
                    min(1.0, (y2 - top) / crop_h),
                )
                kept.append(clipped)
        if must_keep_a_box and not kept:
            continue
        width, height = image.size
        region = (
            round(left * width),
            round(top * height),
            round((left + crop_w) * width),
            round((top + crop_h) * height),
        )
        return image.crop(region), tuple(kept)
    return image, boxes


def flip(image: Image.Image, boxes: tuple[BoxCorners, ...]) -> tuple[Image.Image, tuple[BoxCorners, ...]]:
    mirrored = tuple((1 - x2, y1, 1 - x1, y2) for x1, y1, x2, y2 in boxes)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mirrored


def jitter_colour(image: Image.Image, rng: random.Random) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.7, 1.3))
    return image


def crop_area_floor(sample: SceneSample, config: ViewConfig) -> float:
    """How small an augmented crop of ``sample`` may be: the recipe's floor where the label survives any crop (the
    phones are boxed, or there is none), never below :data:`UNBOXED_PHONE_MIN_CROP_AREA` for an unboxed phone."""
    if sample.has_boxes or sample.target == 0:
        return config.min_crop_area
    return max(config.min_crop_area, UNBOXED_PHONE_MIN_CROP_AREA)


def augmented(
    image: Image.Image, sample: SceneSample, rng: random.Random, *, min_area: float
) -> tuple[Image.Image, tuple[BoxCorners, ...]]:
    """Crop, flip and colour changes; a boxed phone picture always keeps at least one phone."""
    picture, boxes = random_crop(image, sample.boxes, rng, must_keep_a_box=sample.has_boxes, min_area=min_area)
    if rng.random() < 0.5:
        picture, boxes = flip(picture, boxes)
    return jitter_colour(picture, rng), boxes


def degraded(picture: Image.Image, rng: random.Random, *, input_size: int) -> Image.Image:
    """``picture`` as a worse camera might have taken it: each effect at random, independently (a quarter grey, a
    quarter blurred by about a pixel of the network's ``input_size``, a fifth dim, a third re-compressed as a poor
    JPEG)."""
    if rng.random() < 0.25:
        picture = picture.convert("L").convert("RGB")
    if rng.random() < 0.25:
        picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.4) * picture.width / input_size))
    if rng.random() < 0.2:
        picture = ImageEnhance.Brightness(picture).enhance(rng.uniform(0.3, 0.6))
    if rng.random() < 0.33:
        encoded = io.BytesIO()
        picture.save(encoded, format="JPEG", quality=rng.randint(20, 60))
        picture = Image.open(io.BytesIO(encoded.getvalue())).convert("RGB")
    return picture


def through_camera(picture: Image.Image, config: ViewConfig, rng: random.Random) -> Image.Image:
    """A training view as the recipe's ``camera_effects`` leave it (``none`` draws nothing, so views stay as before)."""
    if config.camera_effects == "degrade":
        return degraded(picture, rng, input_size=config.image_size)
    return picture


# Pasted phones' width as a share of the picture: the narrowest a phone is pasted at, and the widest.
SMALLEST_PASTED_WIDTH, LARGEST_PASTED_WIDTH = 0.015, 0.35


def pasted_width(donor: Donor, rng: random.Random, *, scale: str) -> float:
    """How wide ``donor``'s phone is pasted (share of the picture's width) under the recipe's ``paste_scale``.

    ``scale="donor"`` keeps about the phone's own width (0.7-1.4 times); ``"spread"`` draws log-uniformly from a
    small phone's width up to 1.4 times its own, so a large phone (a webcam's) also trains the scales between
    CCTV's and the webcam's, while a tiny one stays tiny."""
    largest = min(LARGEST_PASTED_WIDTH, donor.width * MAX_PASTE_ENLARGEMENT)
    if scale == "spread" and largest > SMALLEST_SPREAD_WIDTH:
        return math.exp(rng.uniform(math.log(SMALLEST_SPREAD_WIDTH), math.log(largest)))
    return min(LARGEST_PASTED_WIDTH, max(SMALLEST_PASTED_WIDTH, donor.width * rng.uniform(0.7, MAX_PASTE_ENLARGEMENT)))


# A quarter-turn of a patch (PIL turns counter-clockwise) and where a normalised box inside it goes.
QUARTER_TURNS: tuple[tuple[Image.Transpose, Callable[[BoxCorners], BoxCorners]], ...] = (
    (Image.Transpose.ROTATE_90, lambda box: (box[1], 1 - box[2], box[3], 1 - box[0])),
    (Image.Transpose.ROTATE_180, lambda box: (1 - box[2], 1 - box[3], 1 - box[0], 1 - box[1])),
    (Image.Transpose.ROTATE_270, lambda box: (1 - box[3], box[0], 1 - box[1], box[2])),
)


def turned(patch: Image.Image, box: BoxCorners, rng: random.Random) -> tuple[Image.Image, BoxCorners]:
    """``patch`` (a donor's crop, already scaled) turned by 0, 90, 180 or 270 degrees at random, and its box."""
    turn = rng.randrange(len(QUARTER_TURNS) + 1)
    if turn == 0:
        return patch, box
    transpose, move_box = QUARTER_TURNS[turn - 1]
    return patch.transpose(transpose), move_box(box)


def paste(
    scene: Image.Image, donor: Donor, rng: random.Random, *, size: int, scale: str, rotation: str
) -> tuple[Image.Image, tuple[BoxCorners, ...]]:
    """``scene`` squeezed to ``size`` with ``donor``'s phone pasted at a random place and scale (and, with
    ``rotation="quarter-turns"``, turned); its box."""
    canvas = scene.resize((size, size), Image.Resampling.BILINEAR)
    phone_width = pasted_width(donor, rng, scale=scale)
    bx1, by1, bx2, by2 = donor.box_in_crop
    crop_width_px = max(4, round(size * phone_width / max(bx2 - bx1, 1e-3)))
    crop_height_px = max(4, round(crop_width_px * donor.crop.height / donor.crop.width))
    crop_height_px = min(crop_height_px, size - 1)
    crop_width_px = min(crop_width_px, size - 1)
    patch = donor.crop.resize((crop_width_px, crop_height_px), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        patch = patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        bx1, bx2 = 1 - bx2, 1 - bx1
    if rotation == "quarter-turns":
        patch, (bx1, by1, bx2, by2) = turned(patch, (bx1, by1, bx2, by2), rng)
        crop_width_px, crop_height_px = patch.size
    left, top = rng.randint(0, size - crop_width_px), rng.randint(0, size - crop_height_px)
    mask = Image.new("L", patch.size, 0)
    inset = max(1, min(patch.size) // 10)
    mask.paste(255, (inset, inset, patch.width - inset, patch.height - inset))
    canvas.paste(patch, (left, top), mask.filter(ImageFilter.GaussianBlur(inset / 2)))
    box = (
        (left + bx1 * crop_width_px) / size,
        (top + by1 * crop_height_px) / size,
        (left + bx2 * crop_width_px) / size,
        (top + by2 * crop_height_px) / size,
    )
    return canvas, (box,)


def is_paste_recipient(sample: SceneSample, index: int, config: ViewConfig) -> bool:
    if sample.target == 1 or sample.base_source not in PASTE_RECIPIENT_SOURCES:
        return False
    if sample.base_source == "imagenet-sample":
        return random.Random(f"{config.seed}:{index}").random() < config.imagenet_paste_fraction
    return True


@dataclass(frozen=True)
class RenderedView:
    picture: Image.Image
    boxes: tuple[BoxCorners, ...]
    is_phone: bool
    index: int
    kind: int


def rendered_views(
    samples: Sequence[SceneSample],
    images: Sequence[Image.Image],
    folds: Sequence[int],
    config: ViewConfig,
    donors_by_fold: dict[int, list[Donor]],
    rng: random.Random,
) -> Iterator[RenderedView]:
    """Every view of every picture, made one at a time (holding ~9,000 rendered pictures at once took 7 GB)."""
    for index, (sample, image) in enumerate(zip(samples, images, strict=True)):
        is_phone = sample.target == 1
        min_area = crop_area_floor(sample, config)
        yield RenderedView(image, sample.boxes, is_phone, index, CLEAN)
        for _ in range(config.augmented_views):
            picture, boxes = augmented(image, sample, rng, min_area=min_area)
            yield RenderedView(through_camera(picture, config, rng), boxes, is_phone, index, AUGMENTED)
        fold_donors = donors_by_fold.get(folds[index], [])
        if fold_donors and is_paste_recipient(sample, index, config):
            for _ in range(config.pasted_views):
                scene, _ = augmented(image, sample, rng, min_area=min_area)
                picture, boxes = paste(
                    scene,
                    rng.choice(fold_donors),
                    rng,
                    size=config.image_size,
                    scale=config.paste_scale,
                    rotation=config.paste_rotation,
                )
                yield RenderedView(through_camera(picture, config, rng), boxes, True, index, PASTED)


def view_count(
    samples: Sequence[SceneSample],
    folds: Sequence[int],
    config: ViewConfig,
    donors_by_fold: dict[int, list[Donor]],
) -> int:
    """How many views :func:`rendered_views` will yield, without rendering them (to allocate the bank once)."""
    count = 0
    for index, sample in enumerate(samples):
        count += 1 + config.augmented_views
        if donors_by_fold.get(folds[index]) and is_paste_recipient(sample, index, config):
            count += config.pasted_views
    return count


# Bump when the rendering code changes what a view looks like (the camera effects' odds, where pastes go, ...):
# the recipe's knobs are in the cache key, the code's own constants are not.
VIEWS_CODE_VERSION = 1


def _file_stamp(path: str) -> str:
    """Size and modification time: a picture replaced under the same name gets new views."""
    try:
        status = os.stat(path)
    except OSError:
        return "-"
    return f"{status.st_size}:{status.st_mtime_ns}"


def bank_key(samples: Sequence[SceneSample], folds: Sequence[int], config: ViewConfig, boundary: int) -> str:
    """A name for the bank that changes with the pictures (path, file size and time, label, source, boxes), the
    folds, the recipe, the rendering code's version and the trunk block whose input the features are (the
    boundary). The source matters: it decides which pictures receive pasted phones."""
    recipe = {**asdict(config), "boundary": boundary, "code": VIEWS_CODE_VERSION}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for sample, fold in zip(samples, folds, strict=True):
        stamp = _file_stamp(sample.path)
        digest.update(f"{sample.path}|{stamp}|{sample.label}|{sample.source}|{sample.boxes}|{fold}\n".encode())
    return digest.hexdigest()[:16]


def build_bank(
    samples: Sequence[SceneSample],
    images: Sequence[Image.Image],
    folds: Sequence[int],
    config: ViewConfig,
    *,
    network: ScenePhoneNet,
    cache_dir: Path | None = None,
    batch_size: int = 16,
) -> FeatureBank:
    """Render every view, run the frozen trunk on it, keep features and targets (read from ``cache_dir`` if there).

    The features are the network's :meth:`~ScenePhoneNet.frozen_trunk` output: at its boundary block's input.
    """
    key = bank_key(samples, folds, config, network.boundary)
    cache_path = cache_dir / f"scene-bank-{key}.pt" if cache_dir else None
    if cache_path and cache_path.is_file():
        logger.info("reading cached views from %s", cache_path)
        return FeatureBank(**torch.load(cache_path, weights_only=True))
    rng = random.Random(config.seed)
    donors = donors_from(samples, images, folds)
    donors_by_fold: dict[int, list[Donor]] = {}
    for donor in donors:
        donors_by_fold.setdefault(donor.fold, []).append(donor)
    preprocess, grid = config.preprocess(), config.grid
    count = view_count(samples, folds, config, donors_by_fold)
    # Every tensor is allocated once, at its final size, and filled in place. Growing lists of per-batch outputs
    # left long-lived blocks scattered between each batch's freed activations; with the allocator settings that
    # keep freed memory in the process (inference/allocator.py), the heap then grew past 24 GB at 576 px.
    features: torch.Tensor | None = None
    objectness = torch.empty((count, grid, grid), dtype=torch.float32)
    geometry = torch.empty((count, 4, grid, grid), dtype=torch.float32)
    targets = torch.empty(count, dtype=torch.long)
    pictures = torch.empty(count, dtype=torch.long)
    kinds = torch.empty(count, dtype=torch.long)
    filled = 0
    views = rendered_views(samples, images, folds, config, donors_by_fold, rng)
    with torch.inference_mode():
        while chunk := list(itertools.islice(views, batch_size)):
            batch = torch.from_numpy(np.stack([image_to_array(view.picture, preprocess) for view in chunk]))
            encoded = network.frozen_trunk(batch)
            if features is None:
                features = torch.empty((count, *encoded.shape[1:]), dtype=torch.float16)
            features[filled : filled + len(chunk)] = encoded
            for offset, view in enumerate(chunk, start=filled):
                cells, shapes = cell_targets(view.boxes, grid, is_phone=view.is_phone)
                objectness[offset] = torch.from_numpy(cells)
                geometry[offset] = torch.from_numpy(shapes)
                targets[offset] = int(view.is_phone)
                pictures[offset] = view.index
                kinds[offset] = view.kind
            filled += len(chunk)
            if filled % (50 * batch_size) == batch_size:
                logger.info("  %d views of %d pictures encoded", filled, len(samples))
    if features is None or filled != count:
        raise RuntimeError(f"Expected {count} views, rendered {filled}.")
    bank = FeatureBank(
        features=features,
        objectness=objectness,
        geometry=geometry,
        targets=targets,
        picture=pictures,
        kind=kinds,
    )
    if cache_path:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(asdict(bank), cache_path)
    return bank

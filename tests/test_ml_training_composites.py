"""The v2 training options: varied and in-hand composites, and temperature fitted on real pictures (seconds)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from inference.finetuned import FineTunedPhoneNet
from inference.preprocessing import PreprocessConfig
from ml_training.augment import AugmentConfig
from ml_training.composites import (
    DEFAULT_COMPOSITES,
    HAND_COMPOSITES,
    VARIED_COMPOSITES,
    CompositeConfig,
    cut_out,
    framed_patch,
    paste_small,
)
from ml_training.data import Sample, load_samples
from ml_training.train import TrainConfig, train_model
from ml_training.views import (
    COMPOSITE_DISTRACTOR,
    COMPOSITE_PHONE,
    HAND_DISTRACTOR,
    HAND_PHONE,
    VARIED_DISTRACTOR,
    VARIED_PHONE,
    build_view_bank,
)
from tests.ml_drawing import draw_not_phone, draw_phone_like, draw_scene, write_tiny_dataset


def _pictures() -> tuple[list[Sample], list, list[int]]:
    rng = random.Random(4)
    images = [draw_phone_like(rng, 96) for _ in range(4)] + [draw_not_phone(rng, 96) for _ in range(4)]
    # "hands" has both labels (in-hand phones and look-alikes); the rest are product shots and scenes.
    sources = ["hands", "product", "hands", "product", "hands", "scenes", "hands", "scenes"]
    samples = [Sample(f"{i}.jpg", "phone" if i < 4 else "not_phone", source=sources[i]) for i in range(8)]
    return samples, images, [0, 0, 1, 1, 0, 0, 1, 1]


def _bank(pictures, views_per_image: int, varied: int, hand: int):
    samples, images, folds = pictures
    return build_view_bank(
        FineTunedPhoneNet(freeze_blocks=16).eval(), samples, images, folds,
        preprocess=PreprocessConfig(image_size=64, resize_size=64), augment=AugmentConfig(),
        views_per_image=views_per_image, composites_per_fold=2, varied_composites_per_fold=varied,
        hand_composites_per_fold=hand, log=lambda message: None,
    )  # fmt: skip


def test_varied_and_hand_composites_are_added_without_changing_the_v1_composites() -> None:
    pictures = _pictures()  # drawn once: the not_phone drawings use unseeded noise
    plain = _bank(pictures, views_per_image=1, varied=0, hand=0)
    extended = _bank(pictures, views_per_image=2, varied=3, hand=1)
    # 8 pictures; per fold 2 v1 pairs, 3 varied pairs and 1 in-hand pair.
    assert len(extended.targets) == 8 + 2 * 2 * (2 + 3 + 1)
    assert extended.views.shape[1] == 2
    for source, count in ((VARIED_PHONE, 6), (VARIED_DISTRACTOR, 6), (HAND_PHONE, 2), (HAND_DISTRACTOR, 2)):
        assert extended.sources.count(source) == count
    # The held-out composites of v1's family are the same pictures whatever is added and however many views.
    v1_family = [i for i, s in enumerate(plain.sources) if s in (COMPOSITE_PHONE, COMPOSITE_DISTRACTOR)]
    v1_in_extended = [i for i, s in enumerate(extended.sources) if s in (COMPOSITE_PHONE, COMPOSITE_DISTRACTOR)]
    assert len(v1_family) == len(v1_in_extended) == 8
    assert torch.allclose(plain.clean[v1_family], extended.clean[v1_in_extended])
    hand_folds = {int(extended.folds[i]) for i, s in enumerate(extended.sources) if s == HAND_PHONE}
    assert hand_folds == {0, 1}


def test_varied_composite_options_keep_v1_draws_and_paste_small_objects() -> None:
    rng = random.Random(2)
    cutout = cut_out(draw_phone_like(rng, size=200))
    assert cutout is not None
    scene = draw_scene(rng, 300)
    explicit_zero = CompositeConfig(squash_probability=0.0, occlusion_probability=0.0, dark_probability=0.0)
    first = paste_small(scene, cutout, random.Random(7), DEFAULT_COMPOSITES)
    assert np.array_equal(np.asarray(first), np.asarray(paste_small(scene, cutout, random.Random(7), explicit_zero)))
    always = CompositeConfig(squash_probability=1.0, occlusion_probability=1.0, dark_probability=1.0)
    for seed in range(6):
        for config in (always, VARIED_COMPOSITES):
            composite = paste_small(scene, cutout, random.Random(seed), config)
            strongly = np.abs(np.asarray(composite, dtype=int) - np.asarray(scene, dtype=int)).sum(2) > 90
            assert composite.size == scene.size and strongly.mean() < 0.25
    patch = framed_patch(draw_not_phone(rng, 120), rng)
    alpha = np.asarray(patch.getchannel("A"))
    # Soft edges: transparent corners, opaque middle.
    assert patch.mode == "RGBA" and alpha[0, 0] < 30 and alpha[alpha.shape[0] // 2, alpha.shape[1] // 2] > 220
    composite = paste_small(scene, patch, random.Random(3), HAND_COMPOSITES)
    assert composite.size == scene.size


def test_training_with_extra_composites_and_real_calibration_reports_each_family(tmp_path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    config = TrainConfig(
        architecture="efficientnet-lite0", image_size=64, freeze_blocks=16, epochs=1, batch_size=8,
        views_per_image=1, composites_per_fold=1,
        varied_composites_per_fold=1, hand_composites_per_fold=1, calibrate_on="real", train_without="hand",
        folds=3, threads=1,
    )  # fmt: skip
    # Hand composites come from sources with both labels (folders name the source after the label).
    samples = [dataclasses.replace(sample, source="hands") for sample in load_samples(data)]
    result = train_model(samples, config, tmp_path / "model", log=lambda message: None)
    assert {"composites", "composites_varied", "composites_hand"} <= set(result.metrics["test"])
    assert result.manifest.temperature > 0
    with pytest.raises(ValueError, match="calibrate_on"):
        train_model(
            samples, TrainConfig(**{**config.to_dict(), "augment": config.augment, "calibrate_on": "x"}),
            tmp_path / "other", log=lambda message: None,
        )  # fmt: skip

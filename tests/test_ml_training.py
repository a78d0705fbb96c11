"""Shared training pieces (grouped splits, metrics, samples) and how a damaged model version is refused."""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from inference import ModelLoadError, load
from inference.drawing import draw_not_phone, draw_scene
from inference.manifest import read_manifest, sha256_file, write_manifest
from ml_training.data import Sample, samples_from_pairs
from ml_training.metrics import binary_metrics, expected_calibration_error, roc_auc
from ml_training.splits import assign_parts, group_ids

SHIPPED_FINE_TUNED = Path(__file__).resolve().parent.parent / "trained_models" / "finetuned-lite0-v1"


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A copy of a shipped fine-tuned version, to damage."""
    return Path(shutil.copytree(SHIPPED_FINE_TUNED, tmp_path / "model"))


def test_corrupted_checkpoint_is_refused_with_a_clear_error(model_copy: Path) -> None:
    weights = bytearray((model_copy / "weights.pt").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (model_copy / "weights.pt").write_bytes(bytes(weights))
    with pytest.raises(ModelLoadError, match=r"weights\.pt is corrupt"):
        load(model_copy, engine="torch")


def test_checkpoint_that_does_not_fit_the_network_is_refused(model_copy: Path) -> None:
    manifest = read_manifest(model_copy)
    state = torch.load(model_copy / "weights.pt", weights_only=True)
    state["head.unexpected"] = torch.ones(3)  # a checkpoint of another network
    torch.save(state, model_copy / "weights.pt")
    files = {**manifest.files, "weights.pt": sha256_file(model_copy / "weights.pt")}
    write_manifest(model_copy, type(manifest)(**{**manifest.__dict__, "files": files}))
    with pytest.raises(ModelLoadError, match="does not match the network"):
        load(model_copy, engine="torch")


def test_checkpoint_trained_on_other_base_weights_is_refused(model_copy: Path) -> None:
    manifest = read_manifest(model_copy)
    options = {**manifest.options, "base_weights_sha256": "0" * 64}
    write_manifest(model_copy, type(manifest)(**{**manifest.__dict__, "options": options}))
    with pytest.raises(ModelLoadError, match="different efficientnet-lite0 ImageNet weights"):
        load(model_copy, engine="torch")


def _near_duplicate(image: Image.Image, rng: random.Random) -> Image.Image:
    """What a re-upload looks like: rescaled, recompressed, slightly brighter."""
    copy = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    copy = ImageEnhance.Brightness(copy).enhance(rng.uniform(0.95, 1.05))
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def grouped_split(
    samples: list[Sample], images: list[Image.Image], fractions: tuple[float, ...], seed: int
) -> list[list[int]]:
    """Indices of ``samples`` per part, as the cross-validation folds are made (group_ids, then assign_parts)."""
    parts = assign_parts(group_ids(samples, images), [sample.target for sample in samples], fractions, seed=seed)
    return [[index for index, part in enumerate(parts) if part == wanted] for wanted in range(len(fractions))]


def test_grouped_split_never_puts_near_duplicates_on_both_sides() -> None:
    rng = random.Random(0)
    images, samples, family = [], [], []
    for index in range(30):
        label = "phone" if index % 2 else "not_phone"
        original = draw_scene(rng, size=128)
        for copy in (original, _near_duplicate(original, rng), _near_duplicate(original, rng)):
            images.append(copy)
            samples.append(Sample(f"{index}-{len(images)}.jpg", label))
            family.append(index)
    parts = grouped_split(samples, images, (0.6, 0.2, 0.2), seed=1)
    part_of = {index: part for part, members in enumerate(parts) for index in members}
    assert sorted(part_of) == list(range(len(samples)))
    for index in range(30):
        assert len({part_of[i] for i, f in enumerate(family) if f == index}) == 1
    assert all(members for members in parts)


def test_grouped_split_keeps_a_declared_group_together() -> None:
    rng = random.Random(1)
    images = [draw_not_phone(rng) for _ in range(20)]
    samples = [Sample(f"{i}.jpg", "not_phone", group="video:a" if i < 5 else None) for i in range(20)]
    parts = grouped_split(samples, images, (0.5, 0.5), seed=0)
    assert len({next(p for p, m in enumerate(parts) if i in m) for i in range(5)}) == 1


def test_samples_from_pairs_reject_unknown_labels() -> None:
    assert samples_from_pairs([("a.jpg", "phone")])[0].target == 1
    with pytest.raises(ValueError, match="Label must be one of"):
        samples_from_pairs([("a.jpg", "cat")])


def test_metrics_match_hand_computed_values() -> None:
    probabilities = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    targets = np.array([1, 1, 1, 0, 0, 0])
    metrics = binary_metrics(probabilities, targets, threshold=0.5)
    assert metrics.confusion == [[2, 1], [1, 2]]
    assert metrics.accuracy == pytest.approx(4 / 6)
    assert metrics.precision == pytest.approx(2 / 3) and metrics.recall == pytest.approx(2 / 3)
    # 8 of the 9 (positive, negative) pairs are ranked correctly.
    assert roc_auc(probabilities, targets) == pytest.approx(8 / 9)


def test_expected_calibration_error_is_zero_when_probabilities_come_true() -> None:
    targets = np.array([1] * 8 + [0] * 2 + [1] * 2 + [0] * 8)
    probabilities = np.array([0.8] * 10 + [0.2] * 10)
    assert expected_calibration_error(probabilities, targets) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(20, 0.99), targets) == pytest.approx(0.49)

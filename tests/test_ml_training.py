"""Training, splitting, calibration and metrics on pictures the tests draw themselves (seconds, no data set)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from inference import ModelLoadError, load, open_image
from inference.manifest import read_manifest, sha256_file, write_manifest
from ml_training.calibration import choose_threshold, fit_temperature
from ml_training.composites import cut_out, paste_small
from ml_training.data import Sample, load_samples, samples_from_pairs
from ml_training.evaluate import evaluate_classifier
from ml_training.metrics import binary_metrics, expected_calibration_error, roc_auc
from ml_training.splits import grouped_split
from ml_training.train import TrainConfig, train_model
from tests.ml_drawing import draw_not_phone, draw_phone_like, draw_scene, write_tiny_dataset

# Head-only, small pictures, one epoch per fold: the knobs the retrain command's own tests use.
TINY_CONFIG = TrainConfig(
    architecture="efficientnet-lite0",
    image_size=64,
    freeze_blocks=16,
    epochs=4,
    patience=4,
    batch_size=8,
    views_per_image=1,
    composites_per_fold=0,
    folds=3,
    threads=1,
    head_lr=3e-3,
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Sample]]:
    data = write_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))
    samples = load_samples(data)
    out = tmp_path_factory.mktemp("models") / "tiny"
    train_model(samples, TINY_CONFIG, out, data_root=data, log=lambda message: None)
    return out, samples


def test_training_on_a_tiny_drawn_set_beats_chance(tiny_model: tuple[Path, list[Sample]]) -> None:
    model_dir, samples = tiny_model
    classifier = load(model_dir, engine="torch")
    result = evaluate_classifier(classifier, samples)
    assert result.metrics.accuracy >= 0.9
    assert result.metrics.roc_auc is not None and result.metrics.roc_auc > 0.95


def test_trained_model_directory_records_its_split_calibration_and_checksums(tiny_model) -> None:
    model_dir, samples = tiny_model
    manifest = read_manifest(model_dir)
    assert manifest.kind == "fine-tuned"
    assert manifest.temperature > 0 and 0 < manifest.threshold < 1
    assert set(manifest.files) >= {"weights.pt", "split.json", "training.json", "predictions.json"}
    for name, digest in manifest.files.items():
        assert sha256_file(model_dir / name) == digest
    split = json.loads((model_dir / "split.json").read_text())
    assert len(split["pictures"]) == len(samples)
    assert {row["part"] for row in split["pictures"]} == {"train", "validation", "test"}
    assert manifest.preprocessing.image_size == 64
    assert "shared_set" in manifest.metrics["test"]


def test_corrupted_checkpoint_is_refused_with_a_clear_error(tiny_model, tmp_path: Path) -> None:
    model_dir, _ = tiny_model
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    weights = bytearray((copy / "weights.pt").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (copy / "weights.pt").write_bytes(bytes(weights))
    with pytest.raises(ModelLoadError, match=r"weights\.pt is corrupt"):
        load(copy, engine="torch")


def test_checkpoint_that_does_not_fit_the_network_is_refused(tiny_model, tmp_path: Path) -> None:
    model_dir, _ = tiny_model
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    manifest = read_manifest(copy)
    # A checkpoint trained with blocks 12-15 unfrozen, presented as a head-only one: tensors do not match.
    state = torch.load(copy / "weights.pt", weights_only=True)
    state["backbone._blocks.15._bn2.weight"] = torch.ones(320)
    torch.save(state, copy / "weights.pt")
    files = {**manifest.files, "weights.pt": sha256_file(copy / "weights.pt")}
    write_manifest(copy, type(manifest)(**{**manifest.__dict__, "files": files}))
    with pytest.raises(ModelLoadError, match="does not match the network"):
        load(copy, engine="torch")


def test_checkpoint_trained_on_other_base_weights_is_refused(tiny_model, tmp_path: Path) -> None:
    model_dir, _ = tiny_model
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    manifest = read_manifest(copy)
    options = {**manifest.options, "base_weights_sha256": "0" * 64}
    write_manifest(copy, type(manifest)(**{**manifest.__dict__, "options": options}))
    with pytest.raises(ModelLoadError, match="different efficientnet-lite0 ImageNet weights"):
        load(copy, engine="torch")


def test_training_preprocessing_gives_the_same_tensor_as_inference(tiny_model, tmp_path: Path) -> None:
    from ml_training.data import decode_samples
    from ml_training.views import clean_view

    model_dir, _ = tiny_model
    path = tmp_path / "photo.jpg"
    draw_phone_like(random.Random(3), size=301).save(path, quality=85)
    classifier = load(model_dir, engine="torch")
    config = classifier.manifest.preprocessing
    training_tensor = clean_view(decode_samples([Sample(str(path), "phone")], config)[0], config)
    inference_tensor = classifier.preprocess([open_image(path, draft_size=config.draft_size)])[0]
    assert torch.equal(training_tensor, inference_tensor)


def _near_duplicate(image: Image.Image, rng: random.Random) -> Image.Image:
    """What a re-upload looks like: rescaled, recompressed, slightly brighter."""
    copy = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    copy = ImageEnhance.Brightness(copy).enhance(rng.uniform(0.95, 1.05))
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


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


def test_temperature_scaling_recovers_an_overconfident_models_temperature() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    targets = (rng.random(20000) < 1 / (1 + np.exp(-true_logits))).astype(int)
    assert fit_temperature(true_logits * 3, targets) == pytest.approx(3.0, rel=0.08)


def test_threshold_keeps_validation_false_positives_within_the_limit() -> None:
    probabilities = np.array([0.95, 0.9, 0.7, 0.55, 0.52, 0.4, 0.3, 0.2, 0.1, 0.05])
    targets = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    threshold = choose_threshold(probabilities, targets, max_false_positive_rate=0.0)
    assert np.sum((probabilities >= threshold) & (targets == 0)) == 0
    assert threshold > 0.55


def test_cut_out_finds_an_object_on_a_plain_background_and_pastes_it_small() -> None:
    rng = random.Random(0)
    product = draw_phone_like(rng, size=200)
    cutout = cut_out(product)
    assert cutout is not None and cutout.mode == "RGBA"
    assert cut_out(draw_not_phone(rng, size=200)) is None
    scene = draw_not_phone(rng, size=300)
    composite = paste_small(scene, cutout, rng)
    assert composite.size == scene.size
    changed = np.any(np.asarray(composite, dtype=int) - np.asarray(scene, dtype=int) != 0, axis=2)
    # JPEG re-encoding touches every pixel a little; the pasted object changes a small region a lot.
    strongly = np.abs(np.asarray(composite, dtype=int) - np.asarray(scene, dtype=int)).sum(2) > 90
    assert changed.any() and 0.005 < strongly.mean() < 0.15


def test_fine_tuned_evidence_map_is_the_heads_cell_logits(tiny_model) -> None:
    model_dir, _ = tiny_model
    classifier = load(model_dir, engine="torch")
    picture = draw_phone_like(random.Random(5), size=64)
    evidence = classifier.evidence_map(picture)
    # 64-pixel inputs end in a 2x2 feature map; the pooled verdict lies between the weakest and strongest cell.
    assert evidence.shape == (2, 2)
    with torch.no_grad():
        logit = classifier.phone_logits(classifier.preprocess([picture]))[0]
    assert float(evidence.min()) - 1e-4 <= float(logit) <= float(evidence.max()) + 1e-4


def test_view_bank_renders_composites_from_each_folds_own_pictures() -> None:
    from inference.finetuned import FineTunedPhoneNet
    from inference.preprocessing import PreprocessConfig
    from ml_training.augment import AugmentConfig
    from ml_training.views import COMPOSITE_DISTRACTOR, COMPOSITE_PHONE, build_view_bank

    rng = random.Random(4)
    images = [draw_phone_like(rng, 96) for _ in range(4)] + [draw_not_phone(rng, 96) for _ in range(4)]
    samples = [Sample(f"{i}.jpg", "phone" if i < 4 else "not_phone") for i in range(8)]
    folds = [0, 0, 1, 1, 0, 0, 1, 1]
    bank = build_view_bank(
        FineTunedPhoneNet(freeze_blocks=16).eval(), samples, images, folds,
        preprocess=PreprocessConfig(image_size=64, resize_size=64), augment=AugmentConfig(),
        views_per_image=1, composites_per_fold=2, log=lambda message: None,
    )  # fmt: skip
    # 8 pictures, then per fold 2 phone and 2 distractor composites.
    assert len(bank.targets) == 8 + 2 * 4
    assert bank.views.shape[:2] == (16, 1) and bank.clean.shape[0] == 16
    assert bank.kinds.count(COMPOSITE_PHONE) == 4 and bank.kinds.count(COMPOSITE_DISTRACTOR) == 4
    composite_folds = [int(f) for f, kind in zip(bank.folds, bank.kinds, strict=True) if kind != "real"]
    assert sorted(composite_folds) == [0, 0, 0, 0, 1, 1, 1, 1]

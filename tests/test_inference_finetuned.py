"""The shipped fine-tuned model and multi-scale inference, as the CLI and the web app use them.

The model is named rather than taken from ``trained_models/ACTIVE``, so these tests hold whichever version is
active (the web app's tests expect to choose that themselves).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from inference import PHONE, load, resolve_model_dir
from inference.__main__ import main as inference_main
from inference.drawing import draw_not_phone, draw_phone_like
from inference.finetuned import FineTunedClassifier, crop_boxes

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "phone-images"
SHIPPED = "finetuned-lite2-v2"


def test_crop_boxes_cover_the_picture_with_overlapping_crops() -> None:
    boxes = crop_boxes(100, 50, grid=2, fraction=0.6)
    assert boxes == [(0, 0, 60, 30), (40, 0, 100, 30), (0, 20, 60, 50), (40, 20, 100, 50)]
    assert crop_boxes(100, 50, grid=0, fraction=0.6) == []


def test_shipped_model_is_fine_tuned_and_gives_probabilities(tmp_path: Path) -> None:
    classifier = load(resolve_model_dir(SHIPPED), engine="torch")
    assert isinstance(classifier, FineTunedClassifier)
    rng = random.Random(0)
    predictions = classifier.predict([draw_phone_like(rng, 224), draw_not_phone(rng, 224)])
    assert all(0.0 <= p.probability <= 1.0 and p.model_version == classifier.version for p in predictions)


def test_multiscale_inference_scores_every_picture_once(tmp_path: Path) -> None:
    classifier = load(resolve_model_dir(SHIPPED), engine="torch")
    classifier.multiscale_grid = 2
    rng = random.Random(1)
    pictures = [draw_phone_like(rng, 160), draw_not_phone(rng, 200), draw_not_phone(rng, 120)]
    assert classifier.preprocess(pictures).shape[0] == 3 * 5
    assert len(classifier.predict(pictures)) == 3


def test_cli_classifies_with_the_shipped_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "picture.jpg"
    draw_not_phone(random.Random(2), 200).save(path)
    assert inference_main(["--json", "--model", SHIPPED, str(path)]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["model_version"] == SHIPPED


@pytest.mark.dataset
@pytest.mark.skipif(not DATASET.is_dir(), reason="shared data set not present")
def test_shipped_model_recognises_held_out_phone_photos() -> None:
    from ml_training.evaluate import evaluate_classifier, samples_in_part
    from ml_training.scene.data import load_data_dirs

    model_dir = resolve_model_dir(SHIPPED)
    samples = samples_in_part(model_dir, load_data_dirs([DATASET]), [DATASET], "test")
    phones = [s for s in samples if s.label == PHONE and s.source == "sam-dev007"][:40]
    assert len(phones) >= 20
    result = evaluate_classifier(load(model_dir, engine="torch"), phones)
    assert result.figures()["all"]["recall"] >= 0.95

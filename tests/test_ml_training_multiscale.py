"""Training a model that is scored, calibrated and shipped as multi-scale inference runs it (whole picture + crops)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference import load
from ml_training.data import load_samples
from ml_training.evaluate import evaluate_classifier, samples_in_part
from ml_training.train import TrainConfig, _with_negative_crops, train_model
from tests.ml_drawing import write_tiny_dataset

GRID, FRACTION = 2, 0.6


def test_negative_crops_replace_only_not_phone_views() -> None:
    features = torch.zeros(64, 2, 3, 3)
    crops = torch.ones(64, GRID * GRID, 2, 3, 3)
    targets = torch.tensor([0.0, 1.0] * 32)
    mixed = _with_negative_crops(features, crops, torch.arange(64), targets, torch.Generator().manual_seed(0))
    swapped = mixed.flatten(1).amax(dim=1) == 1
    assert not swapped[targets == 1].any()  # a phone picture's crop may have lost the phone
    assert 5 < int(swapped[targets == 0].sum()) < 27  # about half of the 32 negatives


def test_multiscale_model_is_calibrated_on_and_ships_with_its_crops(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    config = TrainConfig(
        architecture="efficientnet-lite0", image_size=64, freeze_blocks=16, epochs=2, batch_size=8,
        views_per_image=1, composites_per_fold=0, folds=3, threads=1,
        multiscale_grid=GRID, multiscale_fraction=FRACTION,
    )  # fmt: skip
    samples = load_samples(data)
    result = train_model(samples, config, tmp_path / "model", data_root=data, log=lambda message: None)
    assert result.manifest.options["multiscale_grid"] == GRID
    assert result.manifest.options["multiscale_fraction"] == FRACTION

    classifier = load(tmp_path / "model", engine="torch")
    assert classifier.views_per_image == 1 + GRID * GRID
    # The inference path (whole picture and four crops, strongest evidence kept) gives the probabilities that
    # training measured, so the manifest's threshold and figures are about what the app will run.
    test_samples = samples_in_part(tmp_path / "model", samples, [data], "test")
    measured = evaluate_classifier(classifier, test_samples).probabilities
    predictions = json.loads((tmp_path / "model" / "predictions.json").read_text())["test"]
    recorded = {row["path"]: row["probability"] for row in predictions}
    expected = [recorded[str(Path(s.path).relative_to(data))] for s in test_samples]
    assert np.allclose(measured, expected, atol=1e-4)

    single = load(tmp_path / "model", engine="torch")
    single.multiscale_grid = 0
    assert not np.allclose(evaluate_classifier(single, test_samples).probabilities, expected, atol=1e-4)


def test_negative_grid_is_refused(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    with pytest.raises(ValueError, match="multiscale_grid"):
        train_model(load_samples(data), TrainConfig(multiscale_grid=-1), tmp_path / "model", log=lambda m: None)

"""The pooled-validation threshold: chosen on other rotations' validation folds, never on the test fold."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ml_training.calibration import choose_threshold
from ml_training.data import load_samples
from ml_training.train import RotationResult, TrainConfig, pooled_thresholds, train_model
from ml_training.views import REAL, ViewBank
from tests.ml_drawing import write_tiny_dataset

FOLDS = 3


def _rotation(test_fold: int, val_indices: list[int], val_logits: list[float], temperature: float) -> RotationResult:
    return RotationResult(
        test_fold=test_fold,
        val_fold=(test_fold + 1) % FOLDS,
        state={},
        temperature=temperature,
        threshold=0.5,
        sharpness=2.0,
        epochs=[],
        test_indices=torch.tensor([], dtype=torch.long),
        test_probabilities=np.array([]),
        metrics={},
        val_indices=torch.tensor(val_indices),
        val_logits=np.array(val_logits),
    )


def test_each_rotation_pools_the_validation_folds_that_are_not_its_test_fold() -> None:
    # Fold f holds items 4f..4f+3: two phones then two not_phone pictures; the last item of fold 2 is a composite.
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0] * FOLDS)
    kinds = [REAL] * 11 + ["composite_distractor"]
    bank = ViewBank(
        views=torch.zeros(12, 1, 1, 1, 1),
        clean=torch.zeros(12, 1, 1, 1),
        targets=targets,
        folds=torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]),
        kinds=kinds,
        sample_indices=list(range(12)),
    )
    # Rotation k validates on fold k+1; its logits are made so that each validation fold alone picks a
    # different threshold, and the composite (a very high-scoring negative) must not count.
    rotations = [
        _rotation(0, [4, 5, 6, 7], [4.0, 3.0, 2.0, -3.0], temperature=1.0),  # validates on fold 1
        _rotation(1, [8, 9, 10, 11], [2.0, 1.0, -1.0, 9.0], temperature=2.0),  # validates on fold 2
        _rotation(2, [0, 1, 2, 3], [3.0, 2.5, -2.0, -2.5], temperature=1.0),  # validates on fold 0
    ]
    config = TrainConfig(folds=FOLDS, max_false_positive_rate=0.0)
    thresholds = pooled_thresholds(bank, rotations, config)

    def sigmoid(values: list[float], temperature: float) -> list[float]:
        return [1 / (1 + np.exp(-v / temperature)) for v in values]

    fold_1 = (sigmoid([4.0, 3.0, 2.0, -3.0], 1.0), [1, 1, 0, 0])
    fold_2 = (sigmoid([2.0, 1.0, -1.0], 2.0), [1, 1, 0])  # the composite is left out
    fold_0 = (sigmoid([3.0, 2.5, -2.0, -2.5], 1.0), [1, 1, 0, 0])
    expected = {
        0: [fold_1, fold_2],  # test fold 0: rotation 2's validation (fold 0) is left out
        1: [fold_2, fold_0],
        2: [fold_1, fold_0],
    }
    for test_fold, parts in expected.items():
        probabilities = np.concatenate([p for p, _ in parts])
        labels = np.concatenate([t for _, t in parts])
        assert thresholds[test_fold] == pytest.approx(
            choose_threshold(probabilities, labels, max_false_positive_rate=0.0)
        )
    # Fold 1's not_phone picture at logit 2.0 scores higher than every fold-0/2 negative: only rotations whose
    # pool holds fold 1 need a threshold above it.
    assert thresholds[2] > sigmoid([2.0], 1.0)[0] and thresholds[1] < sigmoid([2.0], 1.0)[0]


def test_training_with_pooled_thresholds_ships_rotation_zeros_pooled_threshold(tmp_path) -> None:
    data = write_tiny_dataset(tmp_path / "data")
    config = TrainConfig(
        architecture="efficientnet-lite0", image_size=64, freeze_blocks=16, epochs=1, batch_size=8,
        views_per_image=1, composites_per_fold=0,
        folds=FOLDS, threads=1, cross_validate=True, threshold_from="pooled", calibrate_on="real",
    )  # fmt: skip
    samples = load_samples(data)
    messages: list[str] = []
    result = train_model(samples, config, tmp_path / "model", log=messages.append)
    per_fold = {row["test_fold"]: row for row in result.metrics["cross_validation"]["per_fold"]}
    assert result.manifest.threshold == pytest.approx(per_fold[0]["threshold"], abs=1e-4)
    assert result.metrics["test"]["shared_set"]["threshold"] == pytest.approx(result.manifest.threshold, abs=1e-4)
    assert sum("pooled validation threshold" in message for message in messages) == FOLDS
    with pytest.raises(ValueError, match="needs cross_validate"):
        train_model(samples, dataclasses.replace(config, cross_validate=False), tmp_path / "other", log=messages.append)

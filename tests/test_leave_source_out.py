"""``python -m ml_training.experiments.leave_source_out``: a source is scored by a head that never saw it.

Two drawn "cameras" (the same drawn scenes, different seeds) stand in for the shared sources: a head trained on
one must find the other's small phones, which it can only do if the held-out camera was really scored and its
boxes read from the cells.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.scene_network import ScenePhoneNet
from ml_training.experiments import leave_source_out
from ml_training.experiments.leave_source_out import main, recall_at_false_positive_rate, source_folds
from ml_training.scene.config import TrainSettings
from ml_training.scene.data import SceneSample
from ml_training.scene.engine import batch_loss, train_heads
from ml_training.scene.targets import IGNORE
from ml_training.scene.views import CLEAN, FeatureBank
from tests.ml_drawing import write_scene_dataset

QUICK = ["--image-size", "224", "--augmented-views", "1", "--pasted-views", "0", "--epochs", "40"]


def drawn_camera(root: Path, source: str, seed: int) -> Path:
    """A drawn scene folder whose pictures, phones and phone-free ones alike, all come from ``source``."""
    folder = write_scene_dataset(root / source, per_label=16, seed=seed, size=224)
    manifest = folder / "manifest.csv"
    text = manifest.read_text().replace("drawn-not_phone", source).replace("drawn-phone", source)
    manifest.write_text(text)
    return folder


def test_a_held_out_camera_is_found_by_a_head_trained_on_the_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen, unseen = drawn_camera(tmp_path, "camera-a", 0), drawn_camera(tmp_path, "camera-b", 1)
    arguments = ["--data-dir", str(seen), "--data-dir", str(unseen), "--held-out", "camera-b", *QUICK]
    trained_on: list[list[int]] = []

    def recording_train_heads(bank: Any, pictures: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        trained_on.append(list(pictures))
        return train_heads(bank, pictures, *args, **kwargs)

    monkeypatch.setattr(leave_source_out, "train_heads", recording_train_heads)

    assert main(arguments) == 0

    assert trained_on == [list(range(32))]  # camera-a's pictures come first: only they trained the head

    figures = json.loads(capsys.readouterr().out)
    assert list(figures) == ["camera-b"]
    held = figures["camera-b"]
    assert (held["pictures"], held["phones"], held["boxed_phone_pictures"]) == (32, 16, 16)
    assert held["roc_auc"] > 0.9
    assert held["recall_at_3pct_fp"] > 0.5
    assert held["best_cell_on_a_phone"] >= 12


def test_an_unknown_source_is_refused_before_anything_is_trained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = drawn_camera(tmp_path, "camera-a", 0)
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(seen), "--held-out", "camera-z", *QUICK])
    assert exit_info.value.code == 2
    assert "No pictures of source(s) camera-z" in capsys.readouterr().err


def test_each_held_out_source_has_a_fold_of_its_own_so_its_phones_are_pasted_nowhere_else() -> None:
    samples = [SceneSample(path=f"{source}.jpg", label="phone", source=source) for source in "abcab"]
    assert source_folds(samples, ["b", "c"]) == [2, 0, 1, 2, 0]


def test_recall_is_read_at_the_cut_that_keeps_false_positives_at_or_under_the_limit() -> None:
    negatives = np.linspace(0, 1, 100)  # the best 3 may be above the cut, the 4th may not
    phones = np.array([0.95, 0.975, 0.99, 0.5])
    scores = np.concatenate([negatives, phones])
    targets = np.concatenate([np.zeros(100, int), np.ones(4, int)])
    recall, false_positive_rate = recall_at_false_positive_rate(scores, targets)
    assert false_positive_rate == pytest.approx(0.03)
    assert recall == pytest.approx(0.5)  # 0.975 and 0.99 beat the 4th best negative (0.9697); 0.95 does not


def two_view_bank(network: ScenePhoneNet, targets: Sequence[int], *, seed: int) -> FeatureBank:
    """Two clean views of random features at ``network``'s boundary, with these picture targets; no cell has a
    target (so only the picture loss differs between the phone-view losses)."""
    features = network.frozen_trunk(torch.zeros(1, 3, 64, 64)).detach()
    grid = features.shape[-1]
    objectness = torch.full((2, grid, grid), IGNORE)
    return FeatureBank(
        features=torch.randn((2, *features.shape[1:]), generator=torch.Generator().manual_seed(seed)).half(),
        objectness=objectness,
        geometry=torch.zeros(2, 4, grid, grid),
        targets=torch.tensor(list(targets)),
        picture=torch.tensor([0, 1]),
        kind=torch.tensor([CLEAN, CLEAN]),
    )


def test_the_pooled_phone_view_loss_trains_phone_views_on_the_verdict_and_leaves_phone_free_views_alone() -> None:
    """``--phone-view-loss pooled`` (the shipped recipe's): a phone view's picture loss is taken on the log-sum-exp
    verdict, which is above the best cell, so it is smaller; a phone-free view's is unchanged."""
    network = ScenePhoneNet(trainable_blocks=0, picture_pooling="lse").eval()  # as train_head builds it
    bank = two_view_bank(network, [1, 0], seed=0)
    best_cell, pooled = TrainSettings(phone_view_loss="best-cell"), TrainSettings(phone_view_loss="pooled")
    with torch.no_grad():
        phone, phone_free = torch.tensor([0]), torch.tensor([1])
        assert batch_loss(network, bank, phone, pooled) < batch_loss(network, bank, phone, best_cell)
        assert batch_loss(network, bank, phone_free, pooled) == batch_loss(network, bank, phone_free, best_cell)

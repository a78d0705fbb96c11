"""Several scene heads on one trunk: how they are averaged, stored, calibrated, trained and warm-started.

The shipped scene model averages heads trained alone with different seeds (``ScenePhoneNet``, ``heads``); models
up to scene-lite0-v5 have one head and must load and score exactly as before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from inference.scene_network import HEADS_PREFIX, ScenePhoneNet, cell_boxes, join_heads, split_heads
from ml_training.scene.config import TrainSettings, recipe_from_flat
from ml_training.scene.engine import train_head, train_heads
from ml_training.scene.model_writer import fold_shift_into_head, unfold_shift
from tests.test_leave_source_out import two_view_bank

REPO_ROOT = Path(__file__).resolve().parent.parent
ONE_HEAD_MODEL = REPO_ROOT / "trained_models" / "scene-lite0-v5"


def random_network(heads: int, *, seed: int = 0, pooling: str = "lse") -> ScenePhoneNet:
    """A network whose heads all differ (fresh heads start alike in their last layers, which predict nothing)."""
    torch.manual_seed(seed)
    network = ScenePhoneNet(imagenet_weights=False, global_context=True, picture_pooling=pooling, heads=heads).eval()
    with torch.no_grad():
        for head in network.scene_heads():
            torch.nn.init.normal_(head.objectness.weight, std=0.3)
            torch.nn.init.normal_(head.geometry.weight, std=0.3)
    return network


@pytest.mark.parametrize("pooling", ["lse", "max"])
def test_several_heads_average_their_cells_and_boxes_then_pool_as_one_head_would(pooling: str) -> None:
    network = random_network(3, pooling=pooling)
    features = torch.randn(2, 112, 7, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        picture, evidence, boxes = network.from_features(features)
        outputs = [head(features) for head in network.scene_heads()]
    cells = torch.stack([head_cells for head_cells, _ in outputs]).mean(dim=0)
    expected_boxes = torch.stack([cell_boxes(geometry) for _, geometry in outputs]).mean(dim=0)
    flat = cells.flatten(1)
    expected_picture = torch.logsumexp(flat, dim=1) if pooling == "lse" else flat.max(dim=1).values
    assert torch.allclose(picture, expected_picture, atol=1e-5)
    assert torch.allclose(boxes, expected_boxes, atol=1e-6)
    # The map keeps the one-head promise: its best cell is the picture's evidence, its order the averaged cells'.
    assert torch.allclose(evidence.flatten(1).max(dim=1).values, picture, atol=1e-5)
    assert torch.equal(evidence.flatten(1).argmax(dim=1), flat.argmax(dim=1))
    # And it is an average, not one head's say.
    assert not torch.allclose(outputs[0][0], cells, atol=1e-3)


def test_a_one_head_checkpoint_loads_unchanged_and_k_heads_round_trip_with_prefixed_keys() -> None:
    shipped = torch.load(ONE_HEAD_MODEL / "weights.pt", weights_only=True)
    assert not any(name.startswith(HEADS_PREFIX) for name in shipped)
    one = ScenePhoneNet(imagenet_weights=False, global_context=True, picture_pooling="lse")
    one.load_trained_state_dict(shipped)
    assert one.trained_state_dict().keys() == shipped.keys()

    network = random_network(3)
    state = network.trained_state_dict()
    assert {name.split(".")[1] for name in state} == {"0", "1", "2"}
    assert all(name.startswith(HEADS_PREFIX) for name in state)
    heads = split_heads(state)
    assert len(heads) == 3 and all(part.keys() == shipped.keys() for part in heads)
    assert join_heads(heads).keys() == state.keys()
    copy = ScenePhoneNet(imagenet_weights=False, global_context=True, picture_pooling="lse", heads=3)
    copy.load_trained_state_dict(state)
    assert all(torch.equal(value, state[name]) for name, value in copy.trained_state_dict().items())


def test_a_checkpoint_with_another_head_count_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"checkpoint has 3 head\(s\), this network 2"):
        ScenePhoneNet(imagenet_weights=False, global_context=True, heads=2).load_trained_state_dict(
            random_network(3).trained_state_dict()
        )


def test_several_heads_need_a_frozen_trunk() -> None:
    with pytest.raises(ValueError, match="heads > 1 needs trainable_blocks 0"):
        ScenePhoneNet(imagenet_weights=False, heads=2, trainable_blocks=1)
    with pytest.raises(ValueError, match="heads > 1 needs trainable_blocks 0"):
        recipe_from_flat({"heads": 3, "trainable_blocks": 1})
    with pytest.raises(ValueError, match="heads must be between 1 and 8"):
        TrainSettings(heads=0)


def test_the_calibration_shift_moves_the_averaged_evidence_by_exactly_the_shift_and_unfolds_back() -> None:
    network = random_network(3)
    raw = network.trained_state_dict()
    features = torch.randn(2, 112, 7, 7, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = network.from_features(features)
        fold_shift_into_head(network, 0.75)
        after = network.from_features(features)
    assert torch.allclose(after[0], before[0] - 0.75, atol=1e-5)
    assert torch.allclose(after[1], before[1] - 0.75, atol=1e-5)
    assert torch.equal(after[2], before[2])  # boxes do not move
    unfolded = unfold_shift(network.trained_state_dict(), 0.75)
    assert all(torch.allclose(unfolded[name], raw[name], atol=1e-6) for name in raw)


def test_each_head_is_trained_as_one_head_would_be_with_its_own_seed() -> None:
    """Head k of ``train_heads`` is exactly ``train_head`` with seed + k: the first head is the one-head recipe's
    model, so adding heads only adds (out of fold, docs/experiments.md "Seeds")."""
    bank = two_view_bank(ScenePhoneNet(imagenet_weights=False), [1, 0], seed=3)
    settings = TrainSettings(epochs=3, batch_size=2, heads=2, seed=5)
    joined = train_heads(bank, [0, 1], {0}, settings)
    assert len(joined.heads) == 2
    heads = split_heads(joined.trained_state_dict())
    for index, state in enumerate(heads):
        alone = train_head(bank, [0, 1], {0}, dataclasses.replace(settings, seed=5 + index)).trained_state_dict()
        assert all(torch.equal(state[name], alone[name]) for name in alone), index
    assert not torch.equal(heads[0]["reduce.weight"], heads[1]["reduce.weight"])


def test_a_warm_start_gives_each_head_its_own_head_or_a_one_head_models_head() -> None:
    bank = two_view_bank(ScenePhoneNet(imagenet_weights=False), [1, 0], seed=4)
    frozen = TrainSettings(epochs=1, batch_size=2, heads=2, learning_rate=1e-12, weight_decay=0.0)
    two = random_network(2)
    for initial in (two.trained_state_dict(), random_network(1, seed=9).trained_state_dict()):
        started = split_heads(initial)
        network = train_heads(bank, [0, 1], {0}, frozen, initial_head=initial)
        for index, state in enumerate(split_heads(network.trained_state_dict())):
            wanted = started[min(index, len(started) - 1)]
            assert torch.allclose(state["reduce.weight"], wanted["reduce.weight"], atol=1e-6), index

"""Checks on the shared data set itself (skipped when ../shared/datasets/phone-images is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_training.data import load_samples

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "phone-images"

pytestmark = [
    pytest.mark.dataset,
    pytest.mark.skipif(not DATASET.is_dir(), reason="shared data set not present"),
]


def test_manifest_samples_keep_video_frames_in_one_group() -> None:
    samples = load_samples(DATASET)
    assert {s.label for s in samples} == {"phone", "not_phone"}
    frames = [s for s in samples if s.source == "phone-usage-video"]
    videos = {s.group for s in frames}
    # 24 frames from a handful of clips (6 after the set's de-duplication): every frame grouped, frames share groups.
    assert None not in videos and 1 < len(videos) < len(frames)
    assert all(Path(s.path).is_file() for s in samples[:50])

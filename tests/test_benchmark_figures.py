"""The figures the benchmarks derive, checked on made-up inputs (the benchmarks themselves are too slow for tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.e2e_bench import _worker_model_share
from phoneapp.services.thumbnails import THUMBNAIL_SIZE, _thumbnail_size


def _classified(upload_id: int, cpu_ms: float) -> str:
    return (
        f"2026-12-02T08:43:15Z INFO phoneapp.services.classification upload classified upload_id={upload_id} "
        f"label=phone probability=0.9 boxes=1 model_version=scene-lite0-v1 inference_ms=21.7 "
        f"inference_cpu_ms={cpu_ms} written=True"
    )


def test_worker_overhead_is_the_workers_cpu_beyond_the_model_they_logged(tmp_path: Path) -> None:
    (tmp_path / "worker.log").write_text(
        "\n".join([_classified(1, 20.0), "a line of celery's", _classified(2, 22.0), _classified(99, 500.0)])
    )
    (tmp_path / "worker1.log").write_text(_classified(3, 24.0))
    (tmp_path / "web.log").write_text(_classified(4, 1000.0))  # not a worker's

    share = _worker_model_share(tmp_path, [1, 2, 3], {"worker": 27.5})

    assert share == {"worker_model_cpu_ms_per_upload": 22.0, "worker_overhead_cpu_ms_per_upload": 5.5}


def test_the_overhead_figure_reads_json_logs_too(tmp_path: Path) -> None:
    """Workers started with ``LOG_FORMAT=json`` in the environment log one object per line."""
    lines = [
        json.dumps({"message": "upload classified", "upload_id": upload_id, "inference_cpu_ms": cpu_ms})
        for upload_id, cpu_ms in ((1, 20.0), (2, 24.0))
    ]
    (tmp_path / "worker.log").write_text(
        "\n".join([*lines, '{"message": "task received", "upload_id": 1}', "{garbled"])
    )

    share = _worker_model_share(tmp_path, [1, 2], {"worker": 27.5})

    assert share == {"worker_model_cpu_ms_per_upload": 22.0, "worker_overhead_cpu_ms_per_upload": 5.5}


def test_no_overhead_figure_when_an_upload_left_no_line(tmp_path: Path) -> None:
    (tmp_path / "worker.log").write_text(_classified(1, 20.0))
    share = _worker_model_share(tmp_path, [1, 2], {"worker": 27.5})
    assert share["worker_overhead_cpu_ms_per_upload"] is None


@pytest.mark.parametrize("size", [(512, 341), (341, 512), (640, 640), (4032, 3024), (200, 150), (4000, 10), (321, 1)])
def test_thumbnail_size_is_what_pillows_thumbnail_gives(size: tuple[int, int]) -> None:
    """The worker resizes straight to this size instead of copying the picture for ``Image.thumbnail``."""
    picture = Image.new("RGB", size)
    picture.thumbnail(THUMBNAIL_SIZE)
    assert _thumbnail_size(size) == picture.size

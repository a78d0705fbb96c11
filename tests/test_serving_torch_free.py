"""Serving processes run the checked ONNX export without ever importing torch, and fall back to torch safely."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

# ONNX Runtime is a pinned requirement (the serving engine): a broken install fails here, never skips.
import onnxruntime  # noqa: F401
import pytest

from inference.drawing import drawn_pictures
from inference.loader import load
from inference.onnx_engine import AccelerationUnavailable, OnnxClassifier
from tests.test_performance_fast_path import fine_tuned_model_dir

REPO_ROOT = Path(__file__).resolve().parent.parent

# What a worker does with a model: load it for serving, classify a picture, draw its heat map.
SERVING_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from inference.images import open_image
    from inference.overlay import heatmap_png
    from inference.loader import load

    classifier = load(Path(sys.argv[1]), cache_dir=Path(sys.argv[2]))
    pictures = [open_image(path) for path in sys.argv[3:]]
    probabilities = classifier.phone_probabilities(pictures)
    png = heatmap_png(classifier, pictures[0])
    print(json.dumps({
        "engine": classifier.engine,
        "from_cache": getattr(classifier, "from_cache", None),
        "probabilities": probabilities,
        "heatmap_bytes": len(png),
        "torch_imported": "torch" in sys.modules,
    }))
    """
)


def run_serving_process(model_dir: Path, cache_dir: Path, pictures: list[Path]) -> dict:
    finished = subprocess.run(
        [sys.executable, "-c", SERVING_SCRIPT, str(model_dir), str(cache_dir), *map(str, pictures)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_a_serving_process_classifies_and_explains_without_importing_torch(tmp_path: Path) -> None:
    model_dir = fine_tuned_model_dir(tmp_path, multiscale_grid=0)
    cache_dir = tmp_path / "cache"
    pictures = drawn_pictures()
    paths = [tmp_path / f"picture-{index}.png" for index in range(len(pictures))]
    for picture, path in zip(pictures, paths, strict=True):
        picture.save(path)

    cold = run_serving_process(model_dir, cache_dir, paths)  # the export is made by a child process
    warm = run_serving_process(model_dir, cache_dir, paths)

    expected = load(model_dir, engine="torch").phone_probabilities(pictures)
    for run in (cold, warm):
        assert run["engine"] == "onnxruntime"
        assert run["torch_imported"] is False
        assert run["heatmap_bytes"] > 100
        assert run["probabilities"] == pytest.approx(expected, abs=1e-4)
    assert (cold["from_cache"], warm["from_cache"]) == (False, True)
    assert len(list(cache_dir.glob("*.onnx"))) == 1


@pytest.mark.parametrize(("grid", "shape"), [(0, (7, 7)), (2, (28, 28))])
def test_the_exported_evidence_map_is_the_torch_models(tmp_path: Path, grid: int, shape: tuple[int, int]) -> None:
    model_dir = fine_tuned_model_dir(tmp_path, multiscale_grid=grid)
    reference = load(model_dir, engine="torch")
    fast = load(model_dir, engine="onnxruntime", cache_dir=tmp_path / "cache")
    assert isinstance(fast, OnnxClassifier) and "evidence" in fast.output_names
    picture = drawn_pictures(seed=3)[1]
    expected = reference.evidence_map(picture)
    actual = fast.evidence_map(picture)
    _, verdict_pass_map = fast.predict_and_explain(picture)
    assert actual.shape == expected.shape == shape  # a multi-scale map has its crops laid over the picture
    assert np.abs(actual - expected).max() < 1e-3
    assert verdict_pass_map is not None and np.array_equal(verdict_pass_map, actual)


def test_a_failed_export_falls_back_to_the_torch_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_export(model_dir: Path, cache_dir: Path) -> None:
        raise AccelerationUnavailable("the export process failed: simulated")

    monkeypatch.setattr("inference.loader.export_to_cache", failing_export)
    model_dir = fine_tuned_model_dir(tmp_path, multiscale_grid=0)

    classifier = load(model_dir, cache_dir=tmp_path / "cache")

    assert not isinstance(classifier, OnnxClassifier)
    pictures = drawn_pictures()
    assert classifier.phone_probabilities(pictures) == pytest.approx(
        load(model_dir, engine="torch").phone_probabilities(pictures), abs=1e-6
    )


def test_a_corrupted_export_in_the_cache_is_not_served(tmp_path: Path) -> None:
    """A damaged cached file (disk full mid-copy, say) must not take the worker down, nor leave it on torch for
    good: the file is made again and served."""
    from inference.export_cache import cached_export_path
    from inference.manifest import read_manifest

    model_dir = fine_tuned_model_dir(tmp_path, multiscale_grid=0)
    cache_dir = tmp_path / "cache"
    path = cached_export_path(cache_dir, read_manifest(model_dir))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx graph")

    classifier = load(model_dir, cache_dir=cache_dir)

    assert isinstance(classifier, OnnxClassifier) and not classifier.from_cache
    assert len(classifier.predict(drawn_pictures())) == 4

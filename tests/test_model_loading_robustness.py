"""A damaged model version is refused with a reason, and a damaged export cache heals instead of being served.

Manifests are copied between machines and edited by hand; exports are files in a shared cache folder. Neither may
crash a load with a raw traceback, change verdicts silently, or leave a worker on eager torch for good.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

# ONNX Runtime is a pinned requirement (the serving engine): a broken install fails here, never skips.
import onnxruntime  # noqa: F401
import pytest
import torch

from inference.drawing import drawn_pictures
from inference.export import stamped
from inference.export_cache import cached_export_path, export_key
from inference.finetuned_network import WEIGHTS_FILE, FineTunedPhoneNet
from inference.loader import load, verify_model_dir
from inference.manifest import MANIFEST_NAME, ModelLoadError, ModelManifest, read_manifest, sha256_file, write_manifest
from inference.onnx_engine import OnnxClassifier
from inference.preprocessing import PreprocessConfig
from inference.torch_engine import TorchClassifier

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = REPO_ROOT / "trained_models"


def shipped_model_dirs() -> list[Path]:
    return sorted(path.parent for path in SHIPPED_MODELS.glob(f"*/{MANIFEST_NAME}"))


def test_every_shipped_model_version_passes_the_manifest_checks() -> None:
    model_dirs = shipped_model_dirs()
    assert len(model_dirs) >= 3
    for model_dir in model_dirs:
        manifest = read_manifest(model_dir, to_run=True)
        assert manifest.version == model_dir.name
        assert verify_model_dir(model_dir, models_root=SHIPPED_MODELS) == manifest


# name -> (how the zero-shot model's manifest is damaged, the field the refusal must name)
MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "files-null": (lambda m: m.update(files=None), "files"),
    "image-size-as-text": (lambda m: m["preprocessing"].update(image_size="448"), "preprocessing.image_size"),
    "image-size-zero": (lambda m: m["preprocessing"].update(resize_size=0), "preprocessing.resize_size"),
    "temperature-zero": (lambda m: m.update(temperature=0), "temperature"),
    "temperature-negative": (lambda m: m.update(temperature=-0.74), "temperature"),
    "threshold-above-one": (lambda m: m.update(threshold=7), "threshold"),
    "threshold-nan": (lambda m: m.update(threshold=float("nan")), "threshold"),
    "std-zero": (lambda m: m["preprocessing"].update(std=[0, 0, 0]), "preprocessing.std"),
    "mean-of-two": (lambda m: m["preprocessing"].update(mean=[0.5, 0.5]), "preprocessing.mean"),
    "interpolation-misspelt": (lambda m: m["preprocessing"].update(interpolation="bilinaer"), "interpolation"),
    "preprocessing-missing": (lambda m: m.pop("preprocessing"), "preprocessing"),
    "image-size-missing": (lambda m: m["preprocessing"].pop("image_size"), "preprocessing.image_size"),
    "preprocessing-a-list": (lambda m: m.update(preprocessing=[]), "preprocessing"),
    "options-a-list": (lambda m: m.update(options=[["engine", "onnxruntime"]]), "options"),
    "version-a-number": (lambda m: m.update(version=3), "version"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_manifest_is_refused_naming_its_field_instead_of_failing_later(tmp_path: Path, case: str) -> None:
    damage, field = MALFORMED[case]
    model_dir = tmp_path / "damaged"
    shutil.copytree(SHIPPED_MODELS / "imagenet-zero-shot", model_dir)
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text())
    damage(manifest)
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(ModelLoadError, match=re.escape(field)):
        load(model_dir, engine="torch", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[1, 2]", b"[" * 100_000])
def test_a_manifest_that_is_not_a_json_object_is_refused_with_a_reason(tmp_path: Path, content: bytes) -> None:
    (tmp_path / MANIFEST_NAME).write_bytes(content)
    with pytest.raises(ModelLoadError, match=r"not valid JSON|expected a JSON object"):
        read_manifest(tmp_path)


def fine_tuned_version(
    root: Path, name: str, *, seed: int, image_size: int = 224, head_weight_std: float = 0.05
) -> Path:
    """A fine-tuned model version with its own random head, as training would write it."""
    torch.manual_seed(seed)
    directory = root / name
    directory.mkdir()
    network = FineTunedPhoneNet(freeze_blocks=12)
    torch.nn.init.normal_(network.head.cell_logits.weight, std=head_weight_std)
    torch.save(network.trained_state_dict(), directory / WEIGHTS_FILE)
    manifest = ModelManifest(
        version=name,
        kind="fine-tuned",
        preprocessing=PreprocessConfig(image_size=image_size, resize_size=image_size),
        files={WEIGHTS_FILE: sha256_file(directory / WEIGHTS_FILE)},
    )
    write_manifest(directory, manifest)
    return directory


def exported(model_dir: Path, cache: Path) -> Path:
    """The cached export of ``model_dir``, made by loading it."""
    assert isinstance(load(model_dir, engine="onnxruntime", cache_dir=cache), OnnxClassifier)
    return cached_export_path(cache, read_manifest(model_dir))


def assert_serves_its_own_graph(model_dir: Path, classifier: object) -> None:
    assert isinstance(classifier, OnnxClassifier)
    pictures = drawn_pictures()
    expected = load(model_dir, engine="torch").phone_probabilities(pictures)
    assert classifier.phone_probabilities(pictures) == pytest.approx(expected, abs=1e-4)


def test_another_models_export_filed_under_this_versions_name_is_not_served(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mine = fine_tuned_version(tmp_path, "mine", seed=1)
    other = exported(fine_tuned_version(tmp_path, "other", seed=2), cache)
    shutil.copyfile(other, cached_export_path(cache, read_manifest(mine)))

    classifier = load(mine, engine="onnxruntime", cache_dir=cache)

    assert isinstance(classifier, OnnxClassifier) and not classifier.from_cache  # exported again
    assert_serves_its_own_graph(mine, classifier)


def test_an_export_that_does_not_take_the_models_input_is_made_again_instead_of_failing_the_load(
    tmp_path: Path,
) -> None:
    """Even stamped with the right key (a hand-run or buggy export), a 224-px graph cannot serve a 256-px model."""
    cache = tmp_path / "cache"
    mine = fine_tuned_version(tmp_path, "mine", seed=1, image_size=256)
    other = exported(fine_tuned_version(tmp_path, "other", seed=2), cache)
    path = cached_export_path(cache, read_manifest(mine))
    path.write_bytes(stamped(other.read_bytes(), key=path.stem))

    classifier = load(mine, engine="onnxruntime", cache_dir=cache)

    assert isinstance(classifier, OnnxClassifier) and not classifier.from_cache
    assert_serves_its_own_graph(mine, classifier)


def test_a_cached_export_cut_short_is_made_again_and_then_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model_dir = fine_tuned_version(tmp_path, "mine", seed=1)
    path = exported(model_dir, cache)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # disk full mid-copy, say

    rebuilt = load(model_dir, engine="onnxruntime", cache_dir=cache)
    later = load(model_dir, engine="onnxruntime", cache_dir=cache)

    assert isinstance(rebuilt, OnnxClassifier) and not rebuilt.from_cache
    assert isinstance(later, OnnxClassifier) and later.from_cache
    assert_serves_its_own_graph(model_dir, later)


def test_an_export_that_stays_unusable_costs_one_new_export_then_torch_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    model_dir = fine_tuned_version(tmp_path, "mine", seed=1)
    path = cached_export_path(cache, read_manifest(model_dir))
    path.parent.mkdir()
    path.write_bytes(b"not an onnx graph")
    exports: list[Path] = []

    def export_writing_garbage(model_dir: Path, cache_dir: Path) -> None:
        exports.append(model_dir)
        path.write_bytes(b"still not an onnx graph")

    monkeypatch.setattr("inference.loader.export_to_cache", export_writing_garbage)

    classifier = load(model_dir, engine="onnxruntime", cache_dir=cache)

    assert not isinstance(classifier, OnnxClassifier)
    assert exports == [model_dir]
    assert len(classifier.predict(drawn_pictures())) == 4


def test_an_export_that_disagrees_with_torch_is_not_served_and_the_log_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A graph whose outputs differ from the PyTorch model's was cached and served: other verdicts than measured."""
    import logging

    cache = tmp_path / "cache"
    model_dir = fine_tuned_version(tmp_path, "mine", seed=1)
    # Any difference at all is too much: the check fails (torch is imported here, so the export runs in this process).
    monkeypatch.setattr("inference.export.AGREEMENT_TOLERANCE", -1.0)

    with caplog.at_level(logging.WARNING, logger="inference.loader"):
        classifier = load(model_dir, engine="onnxruntime", cache_dir=cache)

    assert isinstance(classifier, TorchClassifier), type(classifier)
    assert not cached_export_path(cache, read_manifest(model_dir)).is_file()
    [warning] = [
        record for record in caplog.records if record.getMessage().startswith("fast inference path unavailable")
    ]
    assert "exported graph disagrees with torch" in warning.__dict__["error"]
    assert len(classifier.predict(drawn_pictures())) == 4


def test_an_export_of_a_model_with_huge_log_odds_agrees_within_float32_rounding_and_is_served(tmp_path: Path) -> None:
    """A retrain whose calibration barely told the labels apart gave log-odds of ~3e7: float32 alone made the graph
    differ from torch by more than the absolute tolerance, so the export always failed and torch served it."""
    cache = tmp_path / "cache"
    model_dir = fine_tuned_version(tmp_path, "flat", seed=1, head_weight_std=1e6)

    classifier = load(model_dir, engine="onnxruntime", cache_dir=cache)

    assert isinstance(classifier, OnnxClassifier), type(classifier)
    assert cached_export_path(cache, read_manifest(model_dir)).is_file()


@pytest.mark.parametrize(
    ("kind", "source"),
    [
        ("scene-detector", "scene_options.py"),
        ("scene-detector", "contract.py"),
        ("fine-tuned", "contract.py"),
        ("imagenet-zero-shot", "contract.py"),
    ],
)
def test_an_edit_to_a_module_the_graph_is_built_from_makes_a_new_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, source: str
) -> None:
    """``scene_options.py`` holds the network options' defaults (``picture_pooling``), ``contract.py`` the output
    names: a change to either builds another graph from the same manifest, which must not be served stale."""
    package = tmp_path / "inference"
    shutil.copytree(REPO_ROOT / "inference", package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr("inference.export_cache._PACKAGE_DIR", package)
    manifest = ModelManifest(version="v", kind=kind)
    before = export_key(manifest)

    with (package / source).open("a") as handle:
        handle.write("\n# an edit\n")

    assert export_key(manifest) != before


def loaded_at_once(model_dir: Path, cache: Path, *, processes: int) -> list[Any]:
    """``processes`` serving processes switching to ``model_dir`` at the same moment, each loading it on ONNX
    Runtime with ``cache`` (threads stand in for processes: ``flock`` locks belong to each ``open``, so they exclude
    threads that open the lock file separately just as they exclude processes)."""
    import threading

    together = threading.Barrier(processes)
    loaded: list[Any] = []

    def switch() -> None:
        together.wait()
        loaded.append(load(model_dir, engine="onnxruntime", cache_dir=cache))

    workers = [threading.Thread(target=switch) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return loaded


def test_processes_switching_to_a_new_version_at_once_make_one_export_between_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each prefork worker process finds no export of a newly active version at the same moment; side by side
    they made one each (22 s of waiting uploads instead of ~11). The cache's lock lets one export and the other
    find its file."""
    import inference.loader

    cache = tmp_path / "cache"
    model_dir = fine_tuned_version(tmp_path, "mine", seed=1)
    exports: list[Path] = []
    real_export = inference.loader.export_to_cache

    def counted_export(model_dir: Path, cache_dir: Path) -> None:
        exports.append(model_dir)
        real_export(model_dir, cache_dir)

    monkeypatch.setattr("inference.loader.export_to_cache", counted_export)

    loaded = loaded_at_once(model_dir, cache, processes=2)

    assert len(exports) == 1
    assert sorted(classifier.from_cache for classifier in loaded) == [False, True]
    assert all(isinstance(classifier, OnnxClassifier) for classifier in loaded)


def test_processes_waiting_on_an_export_that_fails_serve_on_torch_instead_of_each_trying_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export that hangs until its timeout (600 s) or fails made each waiting prefork process try in turn, so
    the last one served after N times the timeout; a process started later still tries again (after a fix)."""
    import contextlib
    import threading

    import inference.loader
    from inference.onnx_engine import AccelerationUnavailable

    cache = tmp_path / "cache"
    model_dir = fine_tuned_version(tmp_path, "mine", seed=1)
    exports: list[Path] = []
    at_the_lock = threading.Semaphore(0)
    real_lock = inference.loader.exporting_alone

    @contextlib.contextmanager
    def counted_lock(path: Path) -> Any:
        at_the_lock.release()  # this process has noted the last failure and now waits on the lock
        with real_lock(path):
            yield

    def export_that_times_out(model_dir: Path, cache_dir: Path) -> None:
        exports.append(model_dir)
        for _ in range(3):  # hangs until every process is waiting on it, however slow the machine
            assert at_the_lock.acquire(timeout=60)
        raise AccelerationUnavailable("the export process did not finish: timed out after 600 seconds")

    monkeypatch.setattr("inference.loader.exporting_alone", counted_lock)
    monkeypatch.setattr("inference.loader.export_to_cache", export_that_times_out)

    loaded = loaded_at_once(model_dir, cache, processes=3)

    assert len(exports) == 1
    assert len(loaded) == 3 and not any(isinstance(classifier, OnnxClassifier) for classifier in loaded)
    assert len(loaded[0].predict(drawn_pictures())) == 4  # eager torch serves

    at_the_lock.release(2)  # a later start: alone, it tries again
    load(model_dir, engine="onnxruntime", cache_dir=cache)
    assert len(exports) == 2


def test_an_export_that_is_made_but_will_not_open_is_recorded_for_the_processes_that_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only an export that failed was noted: one written but unusable was discarded and exported again by each
    waiting process in turn."""
    from inference.export_cache import failed_export

    cache = tmp_path / "cache"
    model_dir = fine_tuned_version(tmp_path, "mine", seed=1)
    path = cached_export_path(cache, read_manifest(model_dir))

    def export_writing_garbage(model_dir: Path, cache_dir: Path) -> None:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"not an onnx graph")

    monkeypatch.setattr("inference.loader.export_to_cache", export_writing_garbage)

    classifier = load(model_dir, engine="onnxruntime", cache_dir=cache)

    assert not isinstance(classifier, OnnxClassifier)
    recorded = failed_export(path)
    assert recorded is not None and recorded[1]


def test_a_file_system_without_flock_still_serves_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some network mounts refuse ``flock``: the export is made without the lock, as before it, instead of the
    load failing."""
    import errno

    def no_locks(descriptor: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("inference.export_cache.fcntl.flock", no_locks)
    model_dir = fine_tuned_version(tmp_path, "mine", seed=1)

    classifier = load(model_dir, engine="onnxruntime", cache_dir=tmp_path / "cache")

    assert isinstance(classifier, OnnxClassifier) and not classifier.from_cache


def test_another_users_lock_file_is_locked_read_only(tmp_path: Path) -> None:
    """Exports are written readable by all because other users' workers may share the cache: the lock file must
    not need write access (opened for appending, a second user went without the lock, silently)."""
    import os

    from inference.export_cache import EXPORT_LOCK_NAME, exporting_alone

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / EXPORT_LOCK_NAME).touch()
    os.chmod(cache / EXPORT_LOCK_NAME, 0o444)  # as another user's file looks to this one
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str, flags: int, *args: int) -> int:
        opened.append(str(path))
        assert not flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND), "the lock needs no write access"
        return real_open(path, flags, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("inference.export_cache.os.open", recording_open)
        with exporting_alone(cache / "model.onnx"):
            pass
    assert opened == [str(cache / EXPORT_LOCK_NAME)]


def test_a_written_manifest_is_readable_by_other_users(tmp_path: Path) -> None:
    """Written through a temporary file (0600), a retrained version's manifest could not be read by workers running
    as another user than ``manage.py retrain``; its other files are 0644."""
    import stat

    path = write_manifest(tmp_path, ModelManifest(version="v", kind="imagenet-zero-shot"))

    assert stat.S_IMODE(path.stat().st_mode) == 0o644

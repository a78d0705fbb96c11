"""A worker switching model versions: a refused version costs nothing to refuse, and no failure while loading one
stops a worker that holds a model from classifying."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from phoneapp import resident_model as resident_module
from phoneapp.models import ModelVersion, Upload, UploadStatus
from phoneapp.resident_model import resident_model
from phoneapp.services.classification import upload_classify
from phoneapp.services.errors import ClassificationUnavailable
from phoneapp.services.model_versions import model_dir_of, model_version_activate, model_version_register
from tests.factories import make_upload
from tests.live_services import wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("deployed_models")]

REAL_LOAD = resident_module.classifier_load


def model_copy(settings: Any, name: str) -> ModelVersion:
    """A registered, not yet active, copy of the test model named ``name``."""
    models = Path(settings.MODELS_DIR)
    copy = models / name
    shutil.copytree(models / "imagenet-zero-shot", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "version": name}))
    return model_version_register(model_dir=copy)


@pytest.fixture
def second_version(settings: Any) -> ModelVersion:
    return model_copy(settings, "zero-shot-b")


def loads_failing_for(name: str, error: Exception, calls: list[str]) -> Any:
    """``classifier_load`` as the resident model calls it, raising ``error`` for the model directory ``name``."""

    def load(*, model_dir: Path, **options: Any) -> Any:
        calls.append(Path(model_dir).name)
        if Path(model_dir).name == name:
            raise error
        return REAL_LOAD(model_dir=model_dir, **options)

    return load


def classified_by(alice: User) -> str:
    upload = make_upload(alice, status=UploadStatus.PENDING)
    result = upload_classify(upload_id=upload.pk)
    assert result is not None and result.status == UploadStatus.DONE and result.model_version is not None
    return result.model_version.name


def test_a_version_whose_manifest_is_not_the_registered_one_is_refused_before_anything_is_built(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building it would verify every weight file and might start the export child (torch) for nothing."""
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    manifest = model_dir_of(second_version) / "manifest.json"
    manifest.write_text(manifest.read_text().replace("{", '{"edited after registration": true, ', 1))
    calls: list[str] = []
    monkeypatch.setattr(resident_module, "classifier_load", loads_failing_for("nothing", RuntimeError(), calls))

    assert classified_by(alice) == "imagenet-zero-shot"  # still served by the version it holds
    assert calls == []

    resident_model.forget()  # a fresh worker: nothing to fall back on, the upload waits for a retry
    upload = make_upload(alice, status=UploadStatus.PENDING)
    with pytest.raises(ClassificationUnavailable, match="registered checksum"):
        upload_classify(upload_id=upload.pk)
    assert calls == []


@pytest.mark.parametrize("in_background", [False, True], ids=["in line", "in the background"])
def test_a_new_version_that_crashes_while_loading_leaves_the_worker_on_the_version_it_has(
    alice: User,
    second_version: ModelVersion,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    in_background: bool,
) -> None:
    """Loaded in line (its export cached) or in the background (converted first), a version that fails to load
    leaves the held one classifying, logged with the traceback, and is tried again after RELOAD_RETRY_SECONDS."""
    monkeypatch.setattr(resident_module, "classifier_export_missing", lambda **_: in_background)
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    calls: list[str] = []
    monkeypatch.setattr(
        resident_module, "classifier_load", loads_failing_for("zero-shot-b", MemoryError("no room"), calls)
    )

    with caplog.at_level("ERROR", logger="phoneapp.resident_model"):
        assert classified_by(alice) == "imagenet-zero-shot"
        wait_until(lambda: resident_model._failed, timeout=60, what="the load to fail")  # logged before it is noted
    assert classified_by(alice) == "imagenet-zero-shot"
    assert calls == ["zero-shot-b"]  # not tried again before RELOAD_RETRY_SECONDS
    [record] = [record for record in caplog.records if "still serving the previous one" in record.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is MemoryError

    monkeypatch.setattr(resident_module, "RELOAD_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(resident_module, "classifier_load", loads_failing_for("nothing", RuntimeError(), calls))
    switched = wait_until(lambda: classified_by(alice) == "zero-shot-b" or None, timeout=60, what="the switch")
    assert switched  # once the new version loads


def test_a_crash_while_loading_in_a_worker_without_a_model_leaves_the_upload_for_a_retry(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        resident_module, "classifier_load", loads_failing_for("imagenet-zero-shot", RuntimeError("engine crashed"), [])
    )
    upload = make_upload(alice, status=UploadStatus.PENDING)

    with pytest.raises(ClassificationUnavailable, match="engine crashed"):
        upload_classify(upload_id=upload.pk)

    upload = Upload.objects.get(pk=upload.pk)
    assert upload.status == UploadStatus.PENDING  # not stuck in processing until the sweep finds it


@pytest.mark.django_db(transaction=True)  # the preload reads the active version on a connection of its own
def test_without_a_broker_the_first_request_starts_loading_the_model_in_the_background(client: Any) -> None:
    """The web process classifies itself without a broker, and its first upload waited ~11 s for the model: the
    first request (the page the pictures are chosen on) now starts the load, once."""
    import time

    from django.core.signals import request_started

    resident_model.forget()
    resident_module.preload_on_first_request()
    assert resident_model._loaded is None

    assert client.get("/accounts/login/").status_code == 200  # a page that does not need the model
    deadline = time.monotonic() + 120
    while resident_model._loaded is None and time.monotonic() < deadline:
        time.sleep(0.05)

    assert resident_model._loaded is not None  # held before any upload asked for it
    assert not request_started.disconnect(dispatch_uid=resident_module._PRELOAD_UID)  # one request started it


def test_a_worker_reads_the_active_version_at_most_once_a_check_interval(settings: Any) -> None:
    """Every classification asked the database which version is active: a query per picture, for nothing."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.ACTIVE_MODEL_CHECK_SECONDS = 60
    held = resident_model.current()

    with CaptureQueriesContext(connection) as queries:
        again = resident_model.current()

    assert again is held
    assert len(queries) == 0, [query["sql"] for query in queries]


def test_a_switch_drops_the_previous_model_and_hands_its_memory_back(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc kept a dropped model's memory: a worker grew ~40 MB at each of its first switches (soak test). The
    memory is handed back once the previous model is gone: trimmed while a reference held it, nothing came back."""
    import weakref

    first: list[weakref.ref[Any]] = []  # the first model's classifier, once loaded
    released: list[bool] = []  # for each hand-back, whether that classifier was already gone
    monkeypatch.setattr(resident_module, "release_freed_memory", lambda: released.append(first[0]() is None))
    assert classified_by(alice) == "imagenet-zero-shot"
    first.append(weakref.ref(resident_model.current().classifier))
    assert released == []  # the first load drops nothing

    model_version_activate(version=second_version)
    assert classified_by(alice) == "zero-shot-b"

    assert released == [True] and first[0]() is None


# The events the background loads of a test wait on: all set at its end, so a test that fails early leaves no load
# to run on into later tests.
_RELEASES: list[threading.Event] = []


@pytest.fixture(autouse=True)
def background_loads_released() -> Any:
    earlier = set(threading.enumerate())
    yield
    for event in _RELEASES:
        event.set()
    _RELEASES.clear()
    for thread in set(threading.enumerate()) - earlier:
        if thread.name == "model-switch":
            thread.join(timeout=60)


def loads_waiting(calls: list[str], **releases: threading.Event) -> Any:
    """``classifier_load`` taking as long as an export would: the first load of a model named in ``releases``
    (dashes as underscores) ends once its event is set, at most 60 s; other loads at once."""
    _RELEASES.extend(releases.values())
    waiting = dict(releases)

    def load(*, model_dir: Path, **options: Any) -> Any:
        name = Path(model_dir).name
        calls.append(name)
        event = waiting.pop(name.replace("-", "_"), None)
        if event is not None:
            event.wait(timeout=60)
        return REAL_LOAD(model_dir=model_dir, **options)

    return load


def started_switch(action: Callable[[], bool]) -> threading.Thread:
    """The background load thread that ``action`` (which must return True) started."""
    earlier = set(threading.enumerate())  # an earlier test's switch thread may still be on its way out
    assert action()
    [thread] = [thread for thread in threading.enumerate() if thread.name == "model-switch" and thread not in earlier]
    return thread


def finished(thread: threading.Thread) -> None:
    thread.join(timeout=60)
    assert not thread.is_alive()


@pytest.fixture
def exports_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every version must be converted before it loads: switches go through the background."""
    monkeypatch.setattr(resident_module, "classifier_export_missing", lambda **_: True)


@pytest.mark.usefixtures("exports_missing")
def test_a_version_to_convert_first_loads_in_the_background_while_the_held_one_classifies(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converting in line stopped every worker process ~16 s at a switch (soak test): uploads now keep getting
    verdicts from the version held, and the new one takes over once it is loaded."""
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    release, calls = threading.Event(), list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting(calls, zero_shot_b=release))

    load = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")  # not waiting for the load
    assert [classified_by(alice) for _ in range(2)] == ["imagenet-zero-shot"] * 2

    release.set()
    finished(load)
    assert classified_by(alice) == "zero-shot-b"
    assert calls == ["zero-shot-b"]  # one background load, not one per upload


@pytest.mark.usefixtures("exports_missing")
def test_a_background_load_finishing_after_the_model_was_forgotten_hands_nothing_over(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test forgets the model at its end: a load still running then must not hand its model to the next test,
    even one whose active version has the same key (the next test's database may reuse it)."""
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    release, calls = threading.Event(), list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting(calls, zero_shot_b=release))
    load = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")

    resident_model.forget()
    release.set()
    finished(load)

    assert classified_by(alice) == "zero-shot-b"
    assert calls == ["zero-shot-b", "zero-shot-b"]  # loaded afresh: the forgotten load's model was not taken


@pytest.mark.usefixtures("exports_missing")
def test_a_version_activated_while_another_loads_in_the_background_is_the_one_installed(
    alice: User, second_version: ModelVersion, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two activations seconds apart (live check): the first one's load, ending while the second's still ran, gave
    verdicts for ~5 s after the second was activated, and cleared the mark of the second's load, which started again."""
    third_version = model_copy(settings, "zero-shot-c")
    assert classified_by(alice) == "imagenet-zero-shot"
    releases, calls = {"zero_shot_b": threading.Event(), "zero_shot_c": threading.Event()}, list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting(calls, **releases))

    model_version_activate(version=second_version)
    load_of_b = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")
    model_version_activate(version=third_version)
    load_of_c = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")

    releases["zero_shot_b"].set()
    finished(load_of_b)
    assert [classified_by(alice) for _ in range(2)] == ["imagenet-zero-shot"] * 2  # not b: no longer active

    releases["zero_shot_c"].set()
    finished(load_of_c)
    assert classified_by(alice) == "zero-shot-c"
    assert calls == ["zero-shot-b", "zero-shot-c"]  # each loaded once


@pytest.mark.usefixtures("exports_missing")
@pytest.mark.parametrize("upload_between", [True, False], ids=["an upload between", "no upload between"])
def test_a_quick_rollback_drops_the_version_still_loading(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch, upload_between: bool
) -> None:
    """Rolled back while the new version still loads: it never gives a verdict, whether or not an upload came
    between the rollback and the end of its load (review: with none, it was installed, and served while the version
    rolled back to was converted again)."""
    first = ModelVersion.objects.get(name="imagenet-zero-shot")
    assert classified_by(alice) == "imagenet-zero-shot"
    release, calls = threading.Event(), list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting(calls, zero_shot_b=release))

    model_version_activate(version=second_version)
    load = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")
    model_version_activate(version=first)  # rolled back before b was ready
    if upload_between:
        assert classified_by(alice) == "imagenet-zero-shot"
    release.set()
    finished(load)

    assert [classified_by(alice) for _ in range(2)] == ["imagenet-zero-shot"] * 2
    assert calls == ["zero-shot-b"]  # and the version held was not loaded again


def test_the_export_check_reads_the_deployments_cache_setting(settings: Any, tmp_path: Path) -> None:
    """``classifier_export_missing`` as the resident model calls it (the suite's switches_in_line replaces it)."""
    from inference.export_cache import cached_export_path
    from inference.manifest import read_manifest
    from phoneapp.services.model_versions import classifier_export_missing

    settings.INFERENCE_CACHE_DIR = str(tmp_path / "cache")
    settings.INFERENCE_ENGINE = "onnxruntime"
    model_dir = Path(settings.MODELS_DIR) / "imagenet-zero-shot"
    assert classifier_export_missing(model_dir=model_dir)

    (tmp_path / "cache").mkdir()
    cached_export_path(tmp_path / "cache", read_manifest(model_dir)).touch()
    assert not classifier_export_missing(model_dir=model_dir)

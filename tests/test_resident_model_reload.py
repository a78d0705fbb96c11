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


def test_a_new_version_that_crashes_while_loading_leaves_the_worker_on_the_version_it_has(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    calls: list[str] = []
    monkeypatch.setattr(
        resident_module, "classifier_load", loads_failing_for("zero-shot-b", MemoryError("no room"), calls)
    )

    with caplog.at_level("ERROR", logger="phoneapp.resident_model"):
        assert classified_by(alice) == "imagenet-zero-shot"

    assert calls == ["zero-shot-b"]
    [record] = [record for record in caplog.records if "still serving the previous one" in record.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is MemoryError

    monkeypatch.setattr(resident_module, "RELOAD_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(resident_module, "classifier_load", loads_failing_for("nothing", RuntimeError(), calls))
    assert classified_by(alice) == "zero-shot-b"  # switches once the new version loads


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


def test_a_switch_drops_the_previous_model_and_hands_its_memory_back(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc kept a dropped model's memory: a worker grew ~40 MB at each of its first switches (soak test)."""
    import weakref

    released: list[bool] = []
    monkeypatch.setattr(resident_module, "release_freed_memory", lambda: released.append(True))
    assert classified_by(alice) == "imagenet-zero-shot"
    first = weakref.ref(resident_model.current().classifier)
    assert released == []  # the first load drops nothing

    model_version_activate(version=second_version)
    assert classified_by(alice) == "zero-shot-b"

    assert released == [True] and first() is None


def loads_waiting_for(release: threading.Event | dict[str, threading.Event], calls: list[str]) -> Any:
    """``classifier_load`` taking as long as an export would: until ``release`` (or the model's own event in it) is
    set, at most 60 s."""

    def load(*, model_dir: Path, **options: Any) -> Any:
        name = Path(model_dir).name
        calls.append(name)
        (release[name] if isinstance(release, dict) else release).wait(timeout=60)
        return REAL_LOAD(model_dir=model_dir, **options)

    return load


def started_switch(action: Callable[[], bool]) -> threading.Thread:
    """The background load thread that ``action`` (which must return True) started."""
    earlier = set(threading.enumerate())  # an earlier test's switch thread may still be on its way out
    assert action()
    [thread] = [thread for thread in threading.enumerate() if thread.name == "model-switch" and thread not in earlier]
    return thread


def switched_to(name: str) -> str | None:
    loaded = resident_model._loaded
    return name if loaded is not None and loaded.version.name == name else None


def test_a_version_to_convert_first_loads_in_the_background_while_the_held_one_classifies(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converting in line stopped every worker process ~16 s at a switch (soak test): uploads now keep getting
    verdicts from the version held, and the new one takes over once it is loaded."""
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    monkeypatch.setattr(resident_module, "classifier_export_missing", lambda **_: True)
    release, calls = threading.Event(), list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting_for(release, calls))

    assert [classified_by(alice) for _ in range(3)] == ["imagenet-zero-shot"] * 3  # not waiting for the load
    assert calls == ["zero-shot-b"]  # one background load, not one per upload

    release.set()
    wait_until(lambda: switched_to("zero-shot-b"), timeout=60, what="the switch to zero-shot-b")
    assert classified_by(alice) == "zero-shot-b"
    assert calls == ["zero-shot-b"]


def test_a_background_load_that_fails_keeps_the_held_version_and_is_retried_later(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    monkeypatch.setattr(resident_module, "classifier_export_missing", lambda **_: True)
    calls: list[str] = []
    monkeypatch.setattr(resident_module, "classifier_load", loads_failing_for("zero-shot-b", MemoryError(), calls))

    with caplog.at_level("ERROR", logger="phoneapp.resident_model"):
        assert classified_by(alice) == "imagenet-zero-shot"
        wait_until(lambda: resident_model._failed, timeout=60, what="the background load to fail")
    [record] = [record for record in caplog.records if "still serving the previous one" in record.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is MemoryError

    assert classified_by(alice) == "imagenet-zero-shot"
    assert calls == ["zero-shot-b"]  # not tried again before RELOAD_RETRY_SECONDS


def test_a_background_load_finishing_after_the_model_was_forgotten_installs_nothing(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test forgets the model at its end: a load still running then must not hand the next test a model."""
    assert classified_by(alice) == "imagenet-zero-shot"
    model_version_activate(version=second_version)
    monkeypatch.setattr(resident_module, "classifier_export_missing", lambda **_: True)
    release, calls = threading.Event(), list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting_for(release, calls))
    thread = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")

    resident_model.forget()
    release.set()
    thread.join(timeout=60)

    assert not thread.is_alive() and resident_model._loaded is None


def test_a_version_activated_while_another_loads_in_the_background_is_the_one_installed(
    alice: User, second_version: ModelVersion, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two activations seconds apart (live check): the first one's load, ending while the second's still ran, gave
    verdicts for ~5 s after the second was activated, and cleared the mark of the second's load, which started again."""
    third_version = model_copy(settings, "zero-shot-c")
    assert classified_by(alice) == "imagenet-zero-shot"
    monkeypatch.setattr(resident_module, "classifier_export_missing", lambda **_: True)
    releases, calls = {"zero-shot-b": threading.Event(), "zero-shot-c": threading.Event()}, list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting_for(releases, calls))

    model_version_activate(version=second_version)
    load_of_b = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")
    model_version_activate(version=third_version)
    load_of_c = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")

    releases["zero-shot-b"].set()
    load_of_b.join(timeout=60)
    assert not load_of_b.is_alive() and load_of_c.is_alive()
    assert [classified_by(alice) for _ in range(2)] == ["imagenet-zero-shot"] * 2  # not b: no longer active

    releases["zero-shot-c"].set()
    wait_until(lambda: switched_to("zero-shot-c"), timeout=60, what="the switch to zero-shot-c")
    assert classified_by(alice) == "zero-shot-c"
    assert calls == ["zero-shot-b", "zero-shot-c"]  # each loaded once


def test_a_quick_rollback_drops_the_version_still_loading(
    alice: User, second_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ModelVersion.objects.get(name="imagenet-zero-shot")
    assert classified_by(alice) == "imagenet-zero-shot"
    monkeypatch.setattr(resident_module, "classifier_export_missing", lambda **_: True)
    release, calls = threading.Event(), list[str]()
    monkeypatch.setattr(resident_module, "classifier_load", loads_waiting_for(release, calls))

    model_version_activate(version=second_version)
    thread = started_switch(lambda: classified_by(alice) == "imagenet-zero-shot")
    model_version_activate(version=first)  # rolled back before b was ready
    assert classified_by(alice) == "imagenet-zero-shot"
    release.set()
    thread.join(timeout=60)

    assert classified_by(alice) == "imagenet-zero-shot"
    assert switched_to("imagenet-zero-shot") and calls == ["zero-shot-b"]

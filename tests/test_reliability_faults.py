"""Faults handled inside one process: a missing or corrupt model, uploads stuck in processing, a picture that
keeps killing its worker, a task delivered twice. (Faults that need real processes -- a broker that goes away,
a worker killed with SIGKILL, a database that refuses connections -- are in test_reliability_live.py.)"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from phoneapp.models import Upload, UploadStatus
from phoneapp.services.classification import upload_classify, uploads_requeue_stale
from phoneapp.services.uploads import uploads_create
from tests.images import picture_bytes, uploaded_file

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_heatmaps(heatmaps_off: None) -> None:
    """Overlays play no part in what these tests prove (see ``heatmaps_off``)."""


def manifest_of(settings) -> Path:
    return Path(settings.MODELS_DIR) / "imagenet-zero-shot" / "manifest.json"


def register_model(alice: User) -> None:
    """Register the shipped model first (as ``manage.py sync_models`` does at a deploy), then break it."""
    uploads_create(owner=alice, files=[uploaded_file("warm-up.jpg", picture_bytes(color=(1, 2, 3)))])


def test_missing_model_file_fails_the_upload_with_a_readable_reason(alice: User, settings) -> None:
    register_model(alice)
    from phoneapp.resident_model import resident_model

    resident_model.forget()
    manifest_of(settings).unlink()

    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])

    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED
    assert "model is unavailable" in upload.error.lower()
    assert str(settings.MODELS_DIR) not in upload.error and "manifest" not in upload.error  # no internals


@pytest.mark.writes_model_files  # rewrites a weights or manifest file in place
def test_corrupt_model_file_fails_the_upload_with_a_readable_reason(alice: User, settings) -> None:
    register_model(alice)
    from phoneapp.resident_model import resident_model

    resident_model.forget()
    manifest_of(settings).write_text("{ this is not json")

    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])

    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED
    assert "model is unavailable" in upload.error.lower()
    assert str(settings.MODELS_DIR) not in upload.error and "manifest" not in upload.error  # no internals


def test_upload_stuck_in_processing_is_requeued_after_the_timeout(alice: User, settings) -> None:
    settings.PROCESSING_TIMEOUT_SECONDS = 60
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    # As left by a worker that died mid-task two minutes ago: claimed, never finished.
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING,
        processing_started=timezone.now() - timedelta(minutes=2),
        attempts=1,
        predicted_label="",
        probability=None,
        model_version=None,
        processed=None,
    )
    out = StringIO()

    call_command("requeue_pending", stdout=out)

    upload.refresh_from_db()
    assert upload.status == UploadStatus.DONE
    assert upload.attempts == 2
    assert "1 upload(s) queued" in out.getvalue()


def test_upload_processing_within_the_timeout_is_left_to_its_worker(alice: User, settings) -> None:
    settings.PROCESSING_TIMEOUT_SECONDS = 600
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING, processing_started=timezone.now(), predicted_label="", probability=None
    )

    call_command("requeue_pending", stdout=StringIO())

    upload.refresh_from_db()
    assert upload.status == UploadStatus.PROCESSING


def test_picture_that_keeps_killing_its_worker_ends_failed_not_looping(alice: User, settings) -> None:
    settings.PROCESSING_TIMEOUT_SECONDS = 60
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING,
        processing_started=timezone.now() - timedelta(minutes=5),
        attempts=settings.CLASSIFY_MAX_ATTEMPTS,
        predicted_label="",
        probability=None,
    )

    call_command("requeue_pending", stdout=StringIO())

    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED
    assert "interrupted" in upload.error


def test_pending_upload_left_by_a_broker_outage_is_sent_by_the_command(alice: User, settings) -> None:
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PENDING, predicted_label="", probability=None, model_version=None, processed=None
    )

    call_command("requeue_pending", "--older-than", "0", stdout=StringIO())

    upload.refresh_from_db()
    assert upload.status == UploadStatus.DONE


def test_a_task_delivered_twice_keeps_the_first_verdict(alice: User) -> None:
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    upload.refresh_from_db()
    first = (upload.status, upload.predicted_label, upload.probability, upload.processed, upload.attempts)

    again = upload_classify(upload_id=upload.pk)

    upload.refresh_from_db()
    assert again is None
    assert (upload.status, upload.predicted_label, upload.probability, upload.processed, upload.attempts) == first


def test_sweep_does_not_resend_uploads_waiting_in_the_queue_but_does_resend_lost_ones(alice: User, settings) -> None:
    """A long backlog is not multiplied by the periodic sweep; a message lost long ago is sent again."""
    settings.PROCESSING_TIMEOUT_SECONDS = 300
    [waiting, lost, never_sent] = uploads_create(
        owner=alice, files=[uploaded_file(f"{i}.jpg", picture_bytes(color=(i, 50, 50))) for i in range(3)]
    )
    now = timezone.now()
    not_classified = {"status": UploadStatus.PENDING, "predicted_label": "", "probability": None, "attempts": 0}
    Upload.objects.filter(pk__in=[waiting.pk, lost.pk, never_sent.pk]).update(
        created=now - timedelta(minutes=20), model_version=None, processed=None, **not_classified
    )
    Upload.objects.filter(pk=waiting.pk).update(queued_at=now - timedelta(minutes=1))  # in the queue
    Upload.objects.filter(pk=lost.pk).update(queued_at=now - timedelta(minutes=15))  # message lost
    Upload.objects.filter(pk=never_sent.pk).update(queued_at=None)  # broker was down

    sent = uploads_requeue_stale()

    assert sent == 2
    statuses = dict(Upload.objects.values_list("pk", "status"))
    assert statuses == {waiting.pk: UploadStatus.PENDING, lost.pk: UploadStatus.DONE, never_sent.pk: UploadStatus.DONE}

    call_command("requeue_pending", "--all", stdout=StringIO())  # the operator's "send everything"
    assert Upload.objects.get(pk=waiting.pk).status == UploadStatus.DONE


def test_a_newly_active_version_that_cannot_load_leaves_the_worker_on_the_version_it_has(
    alice: User, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version whose files changed after it was activated: a process holding a model keeps classifying with
    it (the verdict names that version) instead of failing uploads, and switches once the new one loads."""
    import json
    import shutil

    from phoneapp import resident_model as resident_module
    from phoneapp.models import ModelVersion
    from phoneapp.services.model_versions import model_version_activate

    register_model(alice)  # the shipped test model, loaded by this process
    models = Path(settings.MODELS_DIR)
    shutil.copytree(models / "imagenet-zero-shot", models / "zero-shot-b")
    manifest = models / "zero-shot-b" / "manifest.json"
    good = json.dumps({**json.loads(manifest.read_text()), "version": "zero-shot-b"})
    manifest.write_text(good)
    call_command("sync_models", stdout=StringIO())
    model_version_activate(version=ModelVersion.objects.get(name="zero-shot-b"))
    manifest.write_text(good.replace("{", '{"changed after activation": true, ', 1))

    [upload] = uploads_create(owner=alice, files=[uploaded_file("b.jpg", picture_bytes(color=(9, 9, 9)))])

    upload.refresh_from_db()
    assert upload.status == UploadStatus.DONE
    assert upload.model_version is not None and upload.model_version.name == "imagenet-zero-shot"

    manifest.write_text(good)
    monkeypatch.setattr(resident_module, "RELOAD_RETRY_SECONDS", 0.0)
    [later] = uploads_create(owner=alice, files=[uploaded_file("c.jpg", picture_bytes(color=(90, 9, 9)))])

    later.refresh_from_db()
    assert later.status == UploadStatus.DONE
    assert later.model_version is not None and later.model_version.name == "zero-shot-b"

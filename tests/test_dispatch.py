"""Sending tasks (phoneapp/services/dispatch.py and the tasks' give-up): after commit, here without a broker,
left for the sweep when the broker refuses, and one attempts budget shared by the task and the sweep."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import transaction

from phoneapp.models import Upload, UploadStatus
from phoneapp.services.classification import MODEL_UNAVAILABLE_REASON
from phoneapp.services.uploads import uploads_create
from phoneapp.tasks import upload_classify_task
from tests.images import picture_bytes, uploaded_file

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_heatmaps(heatmaps_off: None) -> None:
    """Overlays play no part in what these tests prove (see ``heatmaps_off``)."""


@pytest.fixture
def broker_accepts(settings, monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """A configured broker that takes every message; the messages sent, in order."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        upload_classify_task, "apply_async", lambda args=(), kwargs=None, **options: sent.append(tuple(args))
    )
    return sent


def test_an_upload_sent_to_the_broker_is_marked_queued_and_left_to_the_worker(
    alice: User, broker_accepts: list[tuple[object, ...]]
) -> None:
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])

    upload.refresh_from_db()
    assert broker_accepts == [(upload.pk,)]
    assert upload.status == UploadStatus.PENDING and upload.queued_at is not None


def test_nothing_is_sent_for_uploads_whose_transaction_rolled_back(
    alice: User, broker_accepts: list[tuple[object, ...]]
) -> None:
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
        raise Abandon

    assert broker_accepts == []
    assert not Upload.objects.exists()


def test_without_a_broker_the_upload_is_classified_in_the_request(alice: User) -> None:
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])

    assert upload.status == UploadStatus.DONE
    upload.refresh_from_db()
    assert upload.predicted_label and upload.model_version_id and upload.queued_at is None


def test_the_task_gives_up_after_as_many_tries_as_the_sweep_allows() -> None:
    """One budget: the sweep fails an upload after CLASSIFY_MAX_ATTEMPTS claims; the task tries as often."""
    assert upload_classify_task.max_retries + 1 == django_settings.CLASSIFY_MAX_ATTEMPTS


def upload_failed_on_a_missing_model(alice: User, settings) -> tuple[Upload, Path, str]:
    """An upload whose worker's last try found no model (its manifest deleted): the upload, the manifest's path
    and its text, to put back."""
    uploads_create(owner=alice, files=[uploaded_file("warm-up.jpg", picture_bytes(color=(1, 2, 3)))])  # registers it
    from phoneapp.resident_model import resident_model

    resident_model.forget()
    manifest = Path(settings.MODELS_DIR) / "imagenet-zero-shot" / "manifest.json"
    manifest_text = manifest.read_text()
    manifest.unlink()
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(upload_classify_task, "apply_async", lambda **_: None)
        [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    # The worker's last retry, as it arrives after the backoff: its failure is the give-up on the decorator.
    upload_classify_task.apply(args=(upload.pk,), retries=upload_classify_task.max_retries, throw=False)
    upload.refresh_from_db()
    return upload, manifest, manifest_text


def test_a_worker_whose_last_try_finds_no_model_fails_the_upload_with_a_reason(alice: User, settings) -> None:
    upload, _, _ = upload_failed_on_a_missing_model(alice, settings)

    assert upload.status == UploadStatus.FAILED
    assert upload.error == MODEL_UNAVAILABLE_REASON
    assert upload.attempts == 1


def test_uploads_that_gave_up_on_a_missing_model_finish_once_it_is_back_and_they_are_retried(
    alice: User, settings
) -> None:
    """Nothing sends a failed upload again by itself; ``requeue_pending --failed`` (and the admin's action) do."""
    import io

    from django.core.management import call_command

    upload, manifest, manifest_text = upload_failed_on_a_missing_model(alice, settings)
    assert upload.status == UploadStatus.FAILED
    call_command("requeue_pending", stdout=io.StringIO())  # the sweep leaves failed uploads alone
    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED

    manifest.write_text(manifest_text)  # the operator mends the model
    settings.CELERY_BROKER_URL = ""  # classified in this process, as without a broker
    out = io.StringIO()
    call_command("requeue_pending", "--failed", stdout=out)

    upload.refresh_from_db()
    assert "1 failed upload(s) queued again" in out.getvalue()
    assert (upload.status, upload.error, upload.attempts) == (UploadStatus.DONE, "", 1)
    assert upload.predicted_label in {"phone", "not_phone"}


def test_after_a_failed_send_the_rest_of_the_request_does_not_wait_on_the_broker_again(
    alice: User, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker host that stops answering costs each send its timeouts: a 20-picture upload must pay them once."""
    from phoneapp.services import dispatch

    settings.CELERY_BROKER_URL = "redis://broker.invalid:6379/0"
    attempts: list[int] = []

    def unreachable(**_: object) -> None:
        attempts.append(1)
        raise ConnectionError("timed out")

    monkeypatch.setattr(upload_classify_task, "apply_async", unreachable)
    uploads = uploads_create(
        owner=alice, files=[uploaded_file(f"{index}.jpg", picture_bytes(color=(index, 9, 9))) for index in range(4)]
    )

    assert len(attempts) == 1
    assert {(u.status, u.queued_at) for u in Upload.objects.filter(pk__in=[u.pk for u in uploads])} == {
        (UploadStatus.PENDING, None)
    }
    now = dispatch.time.monotonic()
    monkeypatch.setattr(dispatch.time, "monotonic", lambda: now + dispatch.UNREACHABLE_HOLD_OFF_SECONDS + 1)
    uploads_create(owner=alice, files=[uploaded_file("later.jpg", picture_bytes(color=(99, 9, 9)))])
    assert len(attempts) == 2  # tried again once the hold-off is over


def test_the_sweep_tries_a_broker_this_process_just_found_unreachable(
    alice: User, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's ``requeue_pending`` right after the broker is back must send, not skip for the hold-off."""
    from phoneapp.services.classification import uploads_requeue_stale

    settings.CELERY_BROKER_URL = "redis://broker.invalid:6379/0"
    sent: list[tuple[object, ...]] = []

    def down(**_: object) -> None:
        raise ConnectionError("refused")

    monkeypatch.setattr(upload_classify_task, "apply_async", down)
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    monkeypatch.setattr(upload_classify_task, "apply_async", lambda **kwargs: sent.append(kwargs["args"]))

    assert uploads_requeue_stale(pending_older_than=timedelta(0)) == 1

    assert sent == [(upload.pk,)]


def test_verdicts_and_overlays_go_to_their_own_queues() -> None:
    """The Procfile's worker consumes ``classify,heatmaps``: a task routed anywhere else would wait for ever."""
    from phoneapp.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task, args=(), kwargs={})["queue"].name

    assert queue_of("phoneapp.tasks.upload_classify_task") == "classify"
    assert queue_of("phoneapp.tasks.upload_heatmap_compute_task") == "heatmaps"

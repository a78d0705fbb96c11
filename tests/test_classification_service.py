"""Classification as the worker runs it: idempotent, recorded with its model version, and never stuck."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from phoneapp.models import Upload, UploadStatus
from phoneapp.services.classification import upload_classify, uploads_requeue_stale
from phoneapp.services.model_versions import model_version_activate, model_version_register
from phoneapp.tasks import upload_classify_task
from tests.factories import make_upload

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


pytestmark = pytest.mark.django_db


def test_classifying_twice_gives_one_verdict(alice: User) -> None:
    upload = make_upload(alice, status=UploadStatus.PENDING)
    first = upload_classify(upload_id=upload.pk)
    assert first is not None and first.status == UploadStatus.DONE
    processed_at = first.processed
    assert upload_classify(upload_id=upload.pk) is None  # already done: nothing happens
    upload.refresh_from_db()
    assert upload.processed == processed_at
    assert upload.attempts == 1


def test_task_runs_the_service(alice: User) -> None:
    upload = make_upload(alice, status=UploadStatus.PENDING)
    assert upload_classify_task.apply(args=(upload.pk,)).get() == "done"
    assert upload_classify_task.apply(args=(upload.pk,)).get() == "skipped"


def test_unreadable_stored_file_fails_with_a_reason(alice: User) -> None:
    upload = make_upload(alice, status=UploadStatus.PENDING, data=b"corrupted on disk")
    result = upload_classify(upload_id=upload.pk)
    assert result is not None
    assert result.status == UploadStatus.FAILED
    assert "cannot be read" in result.error


@pytest.mark.usefixtures("deployed_models")
def test_verdict_records_the_version_that_made_it(alice: User, settings: SettingsFixture, tmp_path: Path) -> None:
    models_dir = Path(settings.MODELS_DIR)
    copy = models_dir / "zero-shot-copy"
    shutil.copytree(models_dir / "imagenet-zero-shot", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "version": "zero-shot-copy"}))

    before = make_upload(alice, status=UploadStatus.PENDING)
    upload_classify(upload_id=before.pk)
    model_version_activate(version=model_version_register(model_dir=copy))
    after = make_upload(alice, status=UploadStatus.PENDING)
    upload_classify(upload_id=after.pk)

    before.refresh_from_db()
    after.refresh_from_db()
    assert before.model_version is not None and before.model_version.name == "imagenet-zero-shot"
    assert after.model_version is not None and after.model_version.name == "zero-shot-copy"


def test_upload_stuck_in_processing_goes_back_to_pending_and_is_finished(
    alice: User, settings: SettingsFixture, django_capture_on_commit_callbacks
) -> None:
    settings.PROCESSING_TIMEOUT_SECONDS = 60
    upload = make_upload(alice, status=UploadStatus.PENDING)
    Upload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING, processing_started=timezone.now() - timedelta(minutes=5), attempts=1
    )
    with django_capture_on_commit_callbacks(execute=True):  # the sweep's own transaction, here the test's
        sent = uploads_requeue_stale()  # no broker configured: classified right here
    upload.refresh_from_db()
    assert sent == 1
    assert upload.status == UploadStatus.DONE


def test_recent_processing_upload_is_left_to_its_worker(alice: User) -> None:
    upload = make_upload(alice, status=UploadStatus.PENDING)
    Upload.objects.filter(pk=upload.pk).update(status=UploadStatus.PROCESSING, processing_started=timezone.now())
    assert uploads_requeue_stale() == 0
    upload.refresh_from_db()
    assert upload.status == UploadStatus.PROCESSING


def test_the_verdict_log_line_says_what_the_model_cost_in_cpu(alice: User, caplog: pytest.LogCaptureFixture) -> None:
    """``inference_cpu_ms`` is what operators and ``benchmarks/e2e_bench.py`` read to tell the model's CPU from the
    worker's overhead (issue 17): present, a number, and no more than the wall time allows on the cores there are."""
    upload = make_upload(alice, status=UploadStatus.PENDING)
    with caplog.at_level("INFO", logger="phoneapp.services.classification"):
        upload_classify(upload_id=upload.pk)
    [record] = [record for record in caplog.records if record.getMessage() == "upload classified"]
    cpu_ms, wall_ms = record.__dict__["inference_cpu_ms"], record.__dict__["inference_ms"]
    assert isinstance(cpu_ms, float) and cpu_ms > 0
    assert cpu_ms <= wall_ms * (os.cpu_count() or 1) + 1

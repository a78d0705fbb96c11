"""End to end through the production path: API upload -> Redis -> a real ``celery worker`` process -> PostgreSQL.

Nothing is mocked: the worker is a separate process started with the same command as in production, so it
shares only what production shares (the database, the broker, the media and models folders).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from inference.loader import read_active_pointer
from phoneapp.models import Upload, UploadStatus
from tests import live_services
from tests.images import picture_bytes, uploaded_file

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


pytestmark = pytest.mark.integration

# Starting a worker imports torch and loads the model: several seconds alone, more on a busy 2-core machine.
WORKER_READY_TIMEOUT = 180
VERDICT_TIMEOUT = 120


@pytest.fixture
def broker_url() -> str:
    url = live_services.redis_url()
    live_services.redis_require_empty(url)
    return url


@pytest.fixture
def celery_worker(
    transactional_db: None, isolated_storage: Path, broker_url: str, settings: SettingsFixture
) -> Iterator[live_services.CeleryWorker]:
    """A worker process on the test database and broker; this process sends to the same broker."""
    live_services.postgres_require(connection)
    settings.CELERY_BROKER_URL = broker_url
    env = {
        "DATABASE_URL": live_services.database_url_of(connection.settings_dict),
        "CELERY_BROKER_URL": broker_url,
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "MODELS_DIR": str(django_settings.MODELS_DIR),
        "ACTIVE_MODEL_CHECK_SECONDS": "0",
        "INFERENCE_THREADS": "1",
        "LOG_FORMAT": "plain",
    }
    with live_services.celery_app_sending_to(broker_url) as app:
        worker = live_services.celery_worker_start(env=env, log_path=isolated_storage / "worker.log")
        try:
            worker.wait_ready(app, timeout=WORKER_READY_TIMEOUT)
            yield worker
        finally:
            worker.stop()


def test_worker_process_writes_verdict_of_api_upload(celery_worker: live_services.CeleryWorker, alice_client: Client):
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("desk.jpg")})
    assert response.status_code == 201, response.content
    upload_id = response.json()[0]["id"]

    def finished() -> Upload | None:
        upload = Upload.objects.select_related("model_version").get(pk=upload_id)
        return upload if upload.status in (UploadStatus.DONE, UploadStatus.FAILED) else None

    try:
        upload = live_services.wait_until(finished, timeout=VERDICT_TIMEOUT, what=f"verdict of upload {upload_id}")
    except TimeoutError as error:
        pytest.fail(f"{error}\nworker log:\n{celery_worker.log_tail()}")

    assert upload.status == UploadStatus.DONE, f"{upload.error}\nworker log:\n{celery_worker.log_tail()}"
    assert upload.probability is not None and 0.0 <= upload.probability <= 1.0
    assert upload.predicted_label in ("phone", "not_phone")
    assert upload.model_version is not None
    assert upload.model_version.name == read_active_pointer(django_settings.MODELS_DIR)
    # The verdict came from the worker process, not from this one classifying in-process.
    assert re.search(r"Task phoneapp\.tasks\.upload_classify_task\[[^]]+\] succeeded .*'done'", celery_worker.log())
    shown = alice_client.get(f"/api/uploads/{upload_id}/").json()
    assert (shown["status"], shown["probability"]) == ("done", upload.probability)


def test_worker_keeps_its_database_connection_between_tasks(
    celery_worker: live_services.CeleryWorker, alice_client: Client
) -> None:
    """Celery would open a PostgreSQL connection per task (~4 ms of CPU); the worker reuses one instead."""
    backend_pids_before = _worker_backend_pids()
    upload_ids = []
    for index in range(4):
        picture = picture_bytes(color=(40 * index, 120, 200))  # distinct files: a repeat would not be queued
        response = alice_client.post("/api/uploads/", {"image": uploaded_file(f"p{index}.jpg", picture)})
        assert response.status_code == 201, response.content
        upload_ids.append(response.json()[0]["id"])

        def done(upload_id: int = upload_ids[-1]) -> bool | None:
            return Upload.objects.filter(pk=upload_id, status=UploadStatus.DONE).exists() or None

        try:
            live_services.wait_until(done, timeout=VERDICT_TIMEOUT, what=f"verdict of upload {upload_ids[-1]}")
        except TimeoutError as error:
            pytest.fail(f"{error}\nworker log:\n{celery_worker.log_tail()}")

    # Four tasks, one after another, all served over the connection the worker already had open.
    assert _worker_backend_pids() == backend_pids_before != set()


def _worker_backend_pids() -> set[int]:
    """PostgreSQL backends connected to the test database by anything other than this test process."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}

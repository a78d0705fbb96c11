"""Faults on the real stack: PostgreSQL, Redis and ``celery worker`` processes, nothing mocked.

Each test runs its own throwaway ``redis-server`` on a free loopback port, so it can take the broker away
(the machine's shared Redis on 6379 is never touched) and no other test's queue can mix with its own.
Workers are started with the production command through ``tests/live_services.py``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from inference.drawing import draw_large_picture
from phoneapp.models import Upload, UploadStatus
from phoneapp.services.worker_presence import workers_alive
from tests import live_services
from tests.images import picture_bytes, uploaded_file

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WORKER_READY_TIMEOUT = 180
VERDICT_TIMEOUT = 120
# Small, so a task whose worker was SIGKILLed comes back quickly; production keeps 600 s (settings).
VISIBILITY_TIMEOUT = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayRedis:
    """A ``redis-server`` of this test's own on loopback, without persistence, that can be stopped and started."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            live_services.service_unavailable("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        live_services.wait_until(
            lambda: True if live_services.port_open("127.0.0.1", self.port) else None,
            timeout=20,
            what=f"redis-server on port {self.port}",
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def worker_env(transactional_db: None, isolated_storage: Path, redis_server: ThrowawayRedis) -> dict[str, str]:
    live_services.postgres_require(connection)
    return {
        "DATABASE_URL": live_services.database_url_of(connection.settings_dict),
        "CELERY_BROKER_URL": redis_server.url,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "MODELS_DIR": str(django_settings.MODELS_DIR),
        "ACTIVE_MODEL_CHECK_SECONDS": "0",
        "INFERENCE_THREADS": "1",
        "LOG_FORMAT": "plain",
    }


@contextmanager
def running_worker(
    env: dict[str, str], log_path: Path, app: object, *, pool: str = "solo"
) -> Iterator[live_services.CeleryWorker]:
    worker = live_services.celery_worker_start(env=env, log_path=log_path, pool=pool)
    try:
        worker.wait_ready(app, timeout=WORKER_READY_TIMEOUT)
        yield worker
    finally:
        worker.stop()


def wait_for_status(upload_id: int, statuses: set[str], *, timeout: float, log: str = "") -> Upload:
    def reached() -> Upload | None:
        upload = Upload.objects.get(pk=upload_id)
        return upload if upload.status in statuses else None

    try:
        return live_services.wait_until(reached, timeout=timeout, interval=0.05, what=f"upload {upload_id} {statuses}")
    except TimeoutError as error:
        upload = Upload.objects.get(pk=upload_id)
        pytest.fail(f"{error}; it is {upload.status} ({upload.error})\nworker log:\n{log}")


def slow_picture() -> bytes:
    """A 36-megapixel PNG: a couple of seconds to decode and resize, long enough to kill a worker mid-task."""
    buffer = io.BytesIO()
    draw_large_picture().save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def set_connections_allowed(database: str, *, allowed: bool) -> None:
    """Open or close ``database`` to new connections and, when closing, cut every connection but this test's.

    Done from the maintenance database: PostgreSQL refuses to close the database one is connected to.
    """
    import psycopg

    params = connection.settings_dict
    with (
        psycopg.connect(
            host=params.get("HOST") or "127.0.0.1",
            port=params.get("PORT") or 5432,
            user=params.get("USER") or "postgres",
            password=params.get("PASSWORD") or None,
            dbname="postgres",
            autocommit=True,
        ) as admin,
        connection.cursor() as own,
    ):
        own.execute("SELECT pg_backend_pid()")
        own_pid = own.fetchone()[0]
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                [database, own_pid],
            )


def test_upload_while_broker_is_down_is_kept_pending_then_classified_when_it_returns(
    worker_env: dict[str, str], redis_server: ThrowawayRedis, isolated_storage: Path, alice_client: Client, settings
) -> None:
    settings.CELERY_BROKER_URL = redis_server.url
    with live_services.celery_app_sending_to(redis_server.url) as app:
        # 1. Nothing listens on the broker port: the upload is still accepted, quickly, and shown as pending.
        started = time.monotonic()
        response = alice_client.post("/api/uploads/", {"image": uploaded_file("during-outage.jpg")})
        answer_seconds = time.monotonic() - started
        assert response.status_code == 201, response.content
        first_id = response.json()[0]["id"]
        assert answer_seconds < 15
        assert alice_client.get(f"/api/uploads/{first_id}/").json()["status"] == "pending"
        assert Upload.objects.get(pk=first_id).queued_at is None  # never reached the broker: the sweep's to send
        # The outage lasted a while: the upload is older than the sweep's grace period.
        Upload.objects.filter(pk=first_id).update(created=timezone.now() - timedelta(minutes=2))

        # 2. Redis returns and a worker starts: its start-up sweep sends the pending upload.
        redis_server.start()
        with running_worker(worker_env, isolated_storage / "worker.log", app) as worker:
            upload = wait_for_status(first_id, {"done", "failed"}, timeout=VERDICT_TIMEOUT, log=worker.log_tail())
            assert upload.status == UploadStatus.DONE, upload.error

            # 3. The broker goes away again under a running worker; an upload made meanwhile waits ...
            redis_server.stop()
            live_services.celery_app_drop_connections(app)
            response = alice_client.post("/api/uploads/", {"image": uploaded_file("second.jpg", picture_bytes("PNG"))})
            assert response.status_code == 201
            second_id = response.json()[0]["id"]
            time.sleep(1)
            assert Upload.objects.get(pk=second_id).status == UploadStatus.PENDING

            # ... until Redis is back and an operator runs `manage.py requeue_pending`.
            redis_server.start()
            live_services.celery_app_drop_connections(app)
            call_command("requeue_pending", stdout=io.StringIO())
            upload = wait_for_status(second_id, {"done", "failed"}, timeout=VERDICT_TIMEOUT, log=worker.log_tail())
            assert upload.status == UploadStatus.DONE, upload.error


def test_worker_killed_with_sigkill_mid_task_the_upload_is_redelivered_and_done_once(
    worker_env: dict[str, str], redis_server: ThrowawayRedis, isolated_storage: Path, alice_client: Client, settings
) -> None:
    redis_server.start()
    settings.CELERY_BROKER_URL = redis_server.url
    env = {
        **worker_env,
        # Look for messages past the visibility timeout every second: kombu's own ~100 s between looks made this
        # test wait 100 s for a redelivery that was due after 8.
        "CELERY_UNACKED_RESTORE_SECONDS": "1",
        # Beat fast enough to show the slow upload in hand within its couple of seconds of work.
        "WORKER_HEARTBEAT_SECONDS": "0.1",
        # Only the broker's redelivery may bring the upload back: the worker's start-up sweep must not resend it.
        "ORPHAN_AFTER_SECONDS": "3600",
    }
    with live_services.celery_app_sending_to(redis_server.url) as app:
        # The Procfile's pool, not --pool solo: a solo worker's event loop waits for the task, so even an early
        # acknowledgement (acks_late off) would not have reached Redis before the kill and this test could not fail.
        first = live_services.celery_worker_start(
            env=env, log_path=isolated_storage / "worker-1.log", pool="prefork", concurrency=1
        )
        try:
            first.wait_ready(app, timeout=WORKER_READY_TIMEOUT)
            # Warm the worker up so the slow upload below is slow because of its picture, not model loading.
            warm = alice_client.post("/api/uploads/", {"image": uploaded_file("warm.jpg")}).json()[0]["id"]
            wait_for_status(warm, {"done"}, timeout=VERDICT_TIMEOUT, log=first.log_tail())

            response = alice_client.post("/api/uploads/", {"image": uploaded_file("huge.png", slow_picture())})
            assert response.status_code == 201, response.content
            upload_id = response.json()[0]["id"]

            # Killed only once the task is really running: the upload is claimed and the worker lists it in hand.
            def in_hand() -> bool | None:
                claimed = Upload.objects.filter(pk=upload_id, status=UploadStatus.PROCESSING).exists()
                return True if claimed and upload_id in (workers_alive() or {}).get(first.node_name, []) else None

            live_services.wait_until(in_hand, timeout=VERDICT_TIMEOUT, interval=0.02, what="the worker on the upload")
            os.killpg(first.process.pid, signal.SIGKILL)
            first.process.wait(timeout=10)
        finally:
            first.stop()
        killed_mid_task = Upload.objects.get(pk=upload_id)
        assert killed_mid_task.status == UploadStatus.PROCESSING  # the kill landed before the verdict
        assert killed_mid_task.predicted_label == ""
        assert killed_mid_task.queued_at is not None  # its message did reach the broker

        # A new worker gets the unacknowledged task back once the visibility timeout has passed.
        with running_worker(env, isolated_storage / "worker-2.log", app, pool="prefork") as second:
            upload = wait_for_status(
                upload_id, {"done", "failed"}, timeout=VISIBILITY_TIMEOUT + VERDICT_TIMEOUT, log=second.log_tail()
            )
    assert upload.status == UploadStatus.DONE, upload.error
    assert upload.attempts == 2  # once in the killed worker, once after redelivery
    assert upload.predicted_label in ("phone", "not_phone")
    assert Upload.objects.filter(original_name="huge.png").count() == 1
    # The same message came back (not a new one sent by a sweep) and the upload was classified once, by the second.
    assert _classify_task_ids(first.log(), upload_id) == _classify_task_ids(second.log(), upload_id), second.log()
    assert len(_classify_task_ids(first.log(), upload_id)) == 1
    assert f"upload classified upload_id={upload_id} " not in first.log()
    assert second.log().count(f"upload classified upload_id={upload_id} ") == 1


def _classify_task_ids(log: str, upload_id: int) -> list[str]:
    """Ids of the classify tasks for ``upload_id`` a worker received, in order, from its log."""
    received = re.compile(rf"upload_classify_task\[([0-9a-f-]+)\] received .*'args': '\({upload_id},\)'")
    return received.findall(log)


def test_worker_waits_out_a_database_that_refuses_connections_and_a_missing_model(
    worker_env: dict[str, str], redis_server: ThrowawayRedis, isolated_storage: Path, alice_client: Client, settings
) -> None:
    redis_server.start()
    settings.CELERY_BROKER_URL = redis_server.url
    database = connection.settings_dict["NAME"]
    manifest = Path(django_settings.MODELS_DIR) / "imagenet-zero-shot" / "manifest.json"
    hidden = manifest.with_name("manifest.json.away")
    with live_services.celery_app_sending_to(redis_server.url) as app:
        # The model is missing when the worker starts and when the first upload arrives.
        manifest.rename(hidden)
        with running_worker(worker_env, isolated_storage / "worker.log", app) as worker:
            first_id = alice_client.post("/api/uploads/", {"image": uploaded_file("a.jpg")}).json()[0]["id"]

            def waiting_for_model() -> Upload | None:
                upload = Upload.objects.get(pk=first_id)
                return upload if upload.attempts >= 1 and "Model unavailable" in upload.error else None

            upload = live_services.wait_until(waiting_for_model, timeout=VERDICT_TIMEOUT, what="model retry")
            assert upload.status in (UploadStatus.PENDING, UploadStatus.PROCESSING)  # waiting, not failed
            hidden.rename(manifest)
            upload = wait_for_status(first_id, {"done", "failed"}, timeout=VERDICT_TIMEOUT, log=worker.log_tail())
            assert upload.status == UploadStatus.DONE, upload.error

            # The database refuses new connections and the worker's open one is cut, as in a restart.
            set_connections_allowed(database, allowed=False)
            try:
                response = alice_client.post("/api/uploads/", {"image": uploaded_file("b.png", picture_bytes("PNG"))})
                second_id = response.json()[0]["id"]
                live_services.wait_until(
                    lambda: True if "OperationalError" in worker.log() else None,
                    timeout=VERDICT_TIMEOUT,
                    what="the worker to meet the refused connection",
                )
            finally:
                set_connections_allowed(database, allowed=True)
            upload = wait_for_status(second_id, {"done", "failed"}, timeout=VERDICT_TIMEOUT, log=worker.log_tail())
            assert upload.status == UploadStatus.DONE, upload.error
            assert "retry" in worker.log().lower()

"""The embedded default under parallel load: what a new user runs (`make run`: ``runserver``, a SQLite file, no
broker) takes the upload page's three parallel requests and a small team's clients without a single error.

A real ``manage.py runserver --noreload`` is started on a fresh SQLite file with the shipped model; 8 API clients
(threads, one user each) send 25 pictures each at once. Before SQLite ran in WAL mode with ``BEGIN IMMEDIATE``
and a busy timeout, 160 of these 200 uploads were refused ("database is locked"; 313-323 of 400 when each client
sent 50). The second test adds a
Redis broker and a prefork worker, as `make worker` does, still on SQLite. Figures in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import live_services
from tests.images import picture_bytes
from tests.live_services import REPO_ROOT, wait_until

CLIENTS = 8
UPLOADS_PER_CLIENT = 25
# The first upload loads the model (and exports its ONNX graph once per machine, cached afterwards).
WARM_UP_TIMEOUT = 300
# Two one-thread worker processes on two shared cores classify a few dozen pictures per second.
WORKER_DRAIN_TIMEOUT = 180

CREATE_USERS = """
import json
from django.contrib.auth.models import User
from phoneapp.services.api_tokens import api_token_regenerate
tokens = []
for index in range({count}):
    user = User.objects.create_user(f"client{{index}}", password="not-used-1")
    tokens.append(api_token_regenerate(user=user))
print(json.dumps(tokens))
"""


@dataclass
class Server:
    url: str
    database: Path
    media: Path
    log: Path
    tokens: list[str]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def sqlite_server(tmp_path: Path, *, broker_url: str = "") -> Iterator[Server]:
    """``runserver`` on a SQLite file, as `make run` starts it, with its own media folder and users; with
    ``broker_url``, also a worker as `make worker` starts it (prefork, 2 processes of one thread)."""
    database, media, log = tmp_path / "db.sqlite3", tmp_path / "media", tmp_path / "runserver.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "phoneapp.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "MEDIA_ROOT": str(media),
        "MODELS_DIR": str(REPO_ROOT / "trained_models"),
        "CELERY_BROKER_URL": broker_url,
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, env=env, check=True, timeout=120)
    created = subprocess.run(
        [*manage, "shell", "-c", CREATE_USERS.format(count=CLIENTS + 1)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    tokens = json.loads(created.stdout.strip().splitlines()[-1])
    port = free_port()
    processes = [
        live_services.process_start([*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], env=env, log_path=log)
    ]
    if broker_url:
        worker = [sys.executable, "-m", "celery", "-A", "phoneapp", "worker", "-Q", "classify,heatmaps"]
        worker += ["--pool", "prefork", "--concurrency", "2", "--without-gossip", "--without-mingle"]
        processes.append(
            live_services.process_start(worker, env={**env, "INFERENCE_THREADS": "1"}, log_path=tmp_path / "worker.log")
        )
    server = Server(url=f"http://127.0.0.1:{port}", database=database, media=media, log=log, tokens=tokens)
    try:

        def answering() -> bool | None:
            if processes[0].poll() is not None:
                raise RuntimeError(f"runserver exited with {processes[0].returncode}:\n{server.log_tail()}")
            try:
                urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=2).close()
            except OSError:
                return None
            return True

        wait_until(answering, timeout=60, interval=0.3, what="runserver")
        yield server
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def post_picture(server: Server, token: str, name: str, data: bytes, *, timeout: float = 60) -> tuple[int, str]:
    """``POST /api/uploads/`` one picture as multipart form data; returns the status and the body."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server.url}/api/uploads/",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:  # refused, reset, timed out: the client saw no answer at all
        return 0, repr(error)


def client_pictures(client: int) -> list[bytes]:
    """Small drawn pictures, each different (so none is deduplicated and every one is stored and classified)."""
    return [
        picture_bytes("JPEG", width=160, height=120, color=(client * 30 % 256, index * 5 % 256, 90))
        for index in range(UPLOADS_PER_CLIENT)
    ]


def send_from_all_clients(server: Server) -> list[tuple[int, str]]:
    """A warm-up upload (loads the model), then every client sends its pictures at the same time."""
    warm_up_token, *tokens = server.tokens
    status, body = post_picture(server, warm_up_token, "warm-up.jpg", picture_bytes(), timeout=WARM_UP_TIMEOUT)
    assert status == 201, (body, server.log_tail())
    pictures = {client: client_pictures(client) for client in range(CLIENTS)}

    def one_client(client: int) -> list[tuple[int, str]]:
        return [
            post_picture(server, tokens[client], f"c{client}-{index}.jpg", data)
            for index, data in enumerate(pictures[client])
        ]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = [answer for answers in pool.map(one_client, range(CLIENTS)) for answer in answers]
    statuses = Counter(status for status, _ in answers)
    print(f"{len(answers)} uploads from {CLIENTS} clients in {time.monotonic() - started:.1f}s: {dict(statuses)}")
    failures = [body[:300] for status, body in answers if status != 201]
    assert statuses == {201: CLIENTS * UPLOADS_PER_CLIENT}, (failures[:5], server.log_tail())
    return answers


def uploads_by_status(server: Server) -> dict[str, int]:
    with sqlite3.connect(server.database) as database:
        return dict(database.execute("SELECT status, COUNT(*) FROM phoneapp_upload GROUP BY status"))


def files_missing(server: Server) -> list[str]:
    with sqlite3.connect(server.database) as database:
        files = database.execute("SELECT image, thumbnail FROM phoneapp_upload").fetchall()
    return [name for row in files for name in row if not (server.media / name).is_file()]


def test_eight_clients_uploading_at_once_on_sqlite_all_succeed_and_every_upload_is_done(tmp_path: Path) -> None:
    with sqlite_server(tmp_path) as server:
        send_from_all_clients(server)

        # Classified in the web process before each answer: every row is done, and every stored file is on disk.
        assert uploads_by_status(server) == {"done": CLIENTS * UPLOADS_PER_CLIENT + 1}
        assert files_missing(server) == []


@pytest.mark.integration
def test_eight_clients_on_sqlite_with_a_worker_all_succeed_and_every_upload_ends_done(tmp_path: Path) -> None:
    """`make run` with `make worker` (Redis broker, prefork worker), still on the SQLite file."""
    broker = live_services.redis_url()
    live_services.redis_require_empty(broker)
    with sqlite_server(tmp_path, broker_url=broker) as server:
        send_from_all_clients(server)

        expected = {"done": CLIENTS * UPLOADS_PER_CLIENT + 1}
        started = time.monotonic()
        wait_until(
            lambda: True if uploads_by_status(server) == expected else None,
            timeout=WORKER_DRAIN_TIMEOUT,
            interval=1.0,
            what=f"every upload done (now {uploads_by_status(server)})",
        )
        print(f"worker finished the queue {time.monotonic() - started:.1f}s after the last upload was answered")
        assert files_missing(server) == []
    # Celery retries a task that met a DatabaseError: a lock error must not hide behind those retries.
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "database is locked" not in worker_log and "Traceback" not in worker_log, worker_log[-3000:]

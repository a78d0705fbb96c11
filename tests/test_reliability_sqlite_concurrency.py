"""The embedded default under parallel load: what a new user runs (`make run`: ``runserver``, a SQLite file, no
broker) takes the upload page's three parallel requests and a small team's clients without a single error.

A real ``manage.py runserver --noreload`` is started on a fresh SQLite file with the shipped model; 8 API clients
(threads, one user each) send 50 pictures each at once. Before SQLite ran in WAL mode with ``BEGIN IMMEDIATE``
and a busy timeout, 152 of 200 such uploads answered 500 ("database is locked"). Figures in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
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
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.images import picture_bytes
from tests.live_services import REPO_ROOT, wait_until

CLIENTS = 8
UPLOADS_PER_CLIENT = 50
# The first upload loads the model (and exports its ONNX graph once per machine, cached afterwards).
WARM_UP_TIMEOUT = 300

CREATE_USERS = """
import json
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
tokens = []
for index in range({count}):
    user = User.objects.create_user(f"client{{index}}", password="not-used-1")
    tokens.append(Token.objects.create(user=user).key)
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


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Server]:
    """``runserver`` on a SQLite file, as `make run` starts it, with its own media folder and users."""
    database, media, log = tmp_path / "db.sqlite3", tmp_path / "media", tmp_path / "runserver.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "phoneapp.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "MEDIA_ROOT": str(media),
        "MODELS_DIR": str(REPO_ROOT / "trained_models"),
        "CELERY_BROKER_URL": "",
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
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(url=f"http://127.0.0.1:{port}", database=database, media=media, log=log, tokens=tokens)
    try:

        def answering() -> bool | None:
            if process.poll() is not None:
                raise RuntimeError(f"runserver exited with {process.returncode}:\n{server.log_tail()}")
            try:
                urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=2).close()
            except OSError:
                return None
            return True

        wait_until(answering, timeout=60, interval=0.3, what="runserver")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
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


def test_eight_clients_uploading_at_once_on_sqlite_all_succeed_and_every_upload_is_done(
    sqlite_server: Server,
) -> None:
    warm_up_token, *tokens = sqlite_server.tokens
    status, body = post_picture(sqlite_server, warm_up_token, "warm-up.jpg", picture_bytes(), timeout=WARM_UP_TIMEOUT)
    assert status == 201, (body, sqlite_server.log_tail())
    pictures = {client: client_pictures(client) for client in range(CLIENTS)}

    def one_client(client: int) -> list[tuple[int, str]]:
        return [
            post_picture(sqlite_server, tokens[client], f"c{client}-{index}.jpg", data)
            for index, data in enumerate(pictures[client])
        ]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = [answer for answers in pool.map(one_client, range(CLIENTS)) for answer in answers]
    elapsed = time.monotonic() - started

    statuses = Counter(status for status, _ in answers)
    failures = [body[:300] for status, body in answers if status != 201]
    print(f"{len(answers)} uploads from {CLIENTS} clients in {elapsed:.1f}s: {dict(statuses)}")
    assert statuses == {201: CLIENTS * UPLOADS_PER_CLIENT}, (failures[:5], sqlite_server.log_tail())

    # Classified in the web process before each answer: every row is done, and every stored file is on disk.
    with sqlite3.connect(sqlite_server.database) as database:
        by_status = dict(database.execute("SELECT status, COUNT(*) FROM phoneapp_upload GROUP BY status"))
        files = database.execute("SELECT image, thumbnail FROM phoneapp_upload").fetchall()
    assert by_status == {"done": CLIENTS * UPLOADS_PER_CLIENT + 1}
    missing = [name for row in files for name in row if not (sqlite_server.media / name).is_file()]
    assert missing == []

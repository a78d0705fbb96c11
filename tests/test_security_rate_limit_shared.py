"""With the README's production setting (a shared ``CACHE_URL``), the upload limit holds across web processes:
two real gunicorn processes, one Redis cache, uploads sent to each in turn."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection

from phoneapp.services.api_tokens import api_token_regenerate
from tests import live_services
from tests.images import picture_bytes
from tests.test_reliability_live import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LIMIT = 6


def multipart(picture: bytes, name: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + picture
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def post_upload(port: int, token: str, index: int) -> int:
    body, content_type = multipart(picture_bytes(color=(index * 20 % 256, 40, 90)), f"{index}.jpg")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/uploads/",
        data=body,
        headers={"Content-Type": content_type, "Authorization": f"Token {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        if error.code == 429:
            assert "throttled" in json.loads(error.read())["error"].lower()
        return error.code


def _listening(port: int) -> bool | None:
    """True once something accepts connections on ``port`` (None: not yet, for :func:`live_services.wait_until`)."""
    return True if live_services.port_open("127.0.0.1", port) else None


@pytest.fixture
def two_web_processes(transactional_db: None, isolated_storage: Path) -> Iterator[list[int]]:
    live_services.postgres_require(connection)
    cache_url = live_services.redis_url()
    live_services.redis_require_empty(cache_url)
    env = {
        **os.environ,
        "DATABASE_URL": live_services.database_url_of(connection.settings_dict),
        "CACHE_URL": cache_url,
        "UPLOAD_RATE_LIMIT": f"{LIMIT}/minute",
        # A broker nobody listens on: uploads are stored and left pending at once (no classification work here).
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "MODELS_DIR": str(django_settings.MODELS_DIR),
        "DJANGO_SETTINGS_MODULE": "phoneapp.settings",
    }
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "phoneapp.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
            ],
            cwd=live_services.REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for port in ports
    ]
    try:
        for port in ports:
            live_services.wait_until(
                functools.partial(_listening, port),
                timeout=120,
                what=f"gunicorn on {port}",
            )
        yield ports
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_upload_limit_holds_across_two_web_processes_sharing_the_cache(
    two_web_processes: list[int], alice: User
) -> None:
    token = api_token_regenerate(user=alice)

    statuses = [post_upload(two_web_processes[index % 2], token, index) for index in range(2 * LIMIT)]

    assert statuses.count(201) == LIMIT, statuses  # not 2 x LIMIT: both processes count in one place
    assert statuses[LIMIT:] == [429] * LIMIT

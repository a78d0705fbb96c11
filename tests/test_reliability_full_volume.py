"""A real full media volume: a 1 MiB tmpfs mounted as ``MEDIA_ROOT`` under production gunicorn and a prefork
worker, uploads posted (and their heat maps asked for, which the web draws on first request) until it is full. The
other storage tests inject ``ENOSPC``; here the kernel refuses the writes, wherever they happen to fall (picture,
thumbnail or heat map, part-way through a file).

Needs root's ``mount`` (CI runs as root); skipped with the reason elsewhere, and a failure with ``REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from PIL import Image

from phoneapp.models import Upload
from phoneapp.services.api_tokens import api_token_regenerate
from tests import live_services
from tests.test_reliability_live import (  # noqa: F401  (fixtures)
    WORKER_READY_TIMEOUT,
    ThrowawayRedis,
    free_port,
    redis_server,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VOLUME_SIZE = "1m"
FILES_PER_REQUEST = 2  # a request whose second file does not fit must take its first one back
CLIENTS = 3
MAX_REQUESTS = 150  # ~60 KB per request: the volume is full after ~17; the rest must all be refused cleanly
REFUSALS_TO_STOP = 12  # the volume has stayed full for this many requests in a row


@pytest.fixture
def media_volume(isolated_storage: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs on the test's ``MEDIA_ROOT``; unmounted afterwards whatever happened."""
    media = Path(django_settings.MEDIA_ROOT)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_SIZE},mode=0755", "tmpfs", str(media)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        live_services.service_unavailable(
            f"cannot mount a {VOLUME_SIZE} tmpfs as the media volume (needs root): {mounted.stderr.strip()}"
        )
    try:
        yield media
    finally:
        if subprocess.run(["umount", str(media)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(media)], check=True)  # something still holds it open: detach


def noisy_jpeg(rng: random.Random) -> bytes:
    """~30 KB of noise: fills the volume in a few dozen files, and no two are alike (no de-duplication)."""
    picture = Image.frombytes("RGB", (200, 150), rng.randbytes(200 * 150 * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def post_pictures(
    port: int, token: str, pictures: list[bytes], index: int
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """``POST /api/uploads/`` with several files; (status, headers, parsed JSON body)."""
    boundary = f"full-volume-{index}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{index}-{n}.jpg"\r\n'.encode()
        + b"Content-Type: image/jpeg\r\n\r\n"
        + picture
        + b"\r\n"
        for n, picture in enumerate(pictures)
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/uploads/",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Token {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            payload: dict[str, Any] = json.loads(raw)
        except ValueError:
            payload = {"not JSON": raw[:300]}
        return error.code, dict(error.headers), payload


def get_heatmap(port: int, token: str, upload_id: int) -> int:
    """``GET /api/uploads/<id>/heatmap``, which draws and stores the overlay on its first request; the status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/uploads/{upload_id}/heatmap", headers={"Authorization": f"Token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def files_on(volume: Path) -> set[str]:
    return {path.relative_to(volume).as_posix() for path in volume.rglob("*") if path.is_file()}


def decodes_whole(path: Path) -> bool:
    """A partly written picture fails here: ``load()`` decodes every byte, ``verify()`` alone would not."""
    try:
        with Image.open(path) as picture:
            picture.load()
        return True
    except Exception:
        return False


def test_full_media_volume_answers_503_and_leaves_no_orphan_or_partial_file(
    media_volume: Path,
    worker_env: dict[str, str],  # noqa: F811
    redis_server: ThrowawayRedis,  # noqa: F811
    isolated_storage: Path,
    settings,
) -> None:
    settings.CELERY_BROKER_URL = redis_server.url
    live_services.shipped_model_activate(settings.MODELS_DIR)  # production's model and heat maps, and quick ones
    redis_server.start()
    token = api_token_regenerate(user=User.objects.create_user("filler", password=None))
    port = free_port()
    env = live_services.celery_env(
        {
            **worker_env,
            # Production mode, as deployed (README): DEBUG=0, a real key; one gunicorn process whose threads take
            # the clients' requests at once (a second process would only add start-up time).
            "DEBUG": "0",
            "SECRET_KEY": "full-volume-test-" + os.urandom(32).hex(),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "UPLOAD_RATE_LIMIT": "100000/minute",
            "CACHE_URL": f"{redis_server.url[:-1]}1",
            "INFERENCE_THREADS": "1",
        }
    )
    web = live_services.process_start(
        [sys.executable, "-m", "gunicorn", "phoneapp.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", str(CLIENTS), "--timeout", "60"],
        env=env,
        log_path=isolated_storage / "web.log",
    )  # fmt: skip
    rng = random.Random(19)
    requests = [[noisy_jpeg(rng) for _ in range(FILES_PER_REQUEST)] for _ in range(MAX_REQUESTS)]
    answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []
    heatmap_statuses: list[int] = []
    try:
        with live_services.celery_app_sending_to(redis_server.url) as app:
            worker = live_services.celery_worker_start(
                env=env, log_path=isolated_storage / "worker.log", queue="classify,heatmaps", pool="prefork"
            )
            try:
                live_services.wait_until(
                    lambda: True if live_services.port_open("127.0.0.1", port) else None, timeout=120, what="gunicorn"
                )
                worker.wait_ready(app, timeout=WORKER_READY_TIMEOUT)

                def refused_in_a_row() -> int:
                    tail = [status for status, _, _ in answers[-REFUSALS_TO_STOP:]]
                    return len(tail) if tail and all(status == 503 for status in tail) else 0

                in_flight = Upload.objects.filter(status__in=["pending", "processing"])
                with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
                    for start in range(0, MAX_REQUESTS, CLIENTS):
                        batch = range(start, min(start + CLIENTS, MAX_REQUESTS))
                        answers += pool.map(lambda i: post_pictures(port, token, requests[i], i), batch)
                        # The shipped model's heat maps are drawn when first asked for, by the web process: ask
                        # for the ones not drawn yet, so they too fall on the filling volume. Wait for this batch's
                        # verdicts first: a fast web can fill the volume before any upload is done, and then no heat
                        # map would be asked for while there was still room.
                        live_services.wait_until(
                            lambda: None if in_flight.exists() else True, timeout=60, what="verdicts for this batch"
                        )
                        undrawn = Upload.objects.filter(status="done", heatmap="", evidence__isnull=False)
                        ids = list(undrawn.values_list("pk", flat=True)[:CLIENTS])
                        heatmap_statuses.extend(pool.map(lambda upload_id: get_heatmap(port, token, upload_id), ids))
                        if refused_in_a_row() >= REFUSALS_TO_STOP:
                            break
                # Let the worker catch up with the accepted ones (verdicts, then heat maps that may not fit).
                accepted = Upload.objects.exclude(status__in=["pending", "processing"])
                live_services.wait_until(
                    lambda: True if accepted.count() == Upload.objects.count() else None,
                    timeout=60,
                    what="verdicts for the accepted uploads",
                )
            finally:
                worker.stop()  # warm shutdown: a heat map being written finishes or is cleaned up, then no more writes
            worker_log = worker.log()
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)

    statuses = [status for status, _, _ in answers]
    print(f"\n{len(answers)} requests: {statuses.count(201)} x 201, {statuses.count(503)} x 503")
    for status, headers, payload in answers:
        assert status in (201, 503), (status, payload, (isolated_storage / "web.log").read_text()[-3000:])
        if status == 503:
            assert headers.get("Content-Type", "").startswith("application/json"), headers
            assert "error" in payload and int(headers["Retry-After"]) > 0, (headers, payload)
    assert 201 in statuses, "nothing fitted on the volume"
    assert refused_in_a_row() >= REFUSALS_TO_STOP, f"the volume never filled up: {statuses}"

    # Every file on the volume is named by a row; every name in a row is a whole file on the volume.
    rows = list(Upload.objects.values("id", "status", "image", "thumbnail", "heatmap"))
    named = {name for row in rows for name in (row["image"], row["thumbnail"], row["heatmap"]) if name}
    on_volume = files_on(media_volume)
    assert on_volume - named == set(), "files with no row (orphans)"
    assert named - on_volume == set(), "rows naming a file that is not there"
    assert len(rows) == FILES_PER_REQUEST * statuses.count(201)  # a refused request left no row either
    damaged = sorted(name for name in on_volume if not decodes_whole(media_volume / name))
    assert damaged == [], "empty or partly written files"
    heatmaps = sum(1 for row in rows if row["heatmap"])
    print(f"{len(rows)} uploads ({sorted({row['status'] for row in rows})}), {heatmaps} heat maps, volume full")
    assert set(heatmap_statuses) <= {200, 503}, heatmap_statuses  # drawn and served, or refused whole
    assert heatmaps > 0, worker_log[-3000:]  # the web drew them on the same volume, until it could not

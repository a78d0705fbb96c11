"""``/healthz`` tells the truth about the worker and the disk, and names what fails."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import FileSystemStorage
from django.test import Client

from phoneapp.services import worker_presence
from phoneapp.services.api_tokens import api_token_regenerate
from tests.factories import client_for

# /healthz reports "no active version" until `manage.py sync_models` ran, as it does at every deploy.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("deployed_models")]


@pytest.fixture
def staff_client(second_reviewer: User) -> Client:
    """A staff member's session: the one that sees the figures."""
    return client_for(second_reviewer)


def test_healthz_names_every_part_when_all_is_well(staff_client: Client) -> None:
    body = staff_client.get("/healthz").json()

    assert body["status"] == "ok" and body["failing"] == []
    assert (body["worker"], body["storage"]) == ("not configured", "ok")  # no broker: classified in-process
    assert body["free_space_mb"] > 0


def test_healthz_is_503_naming_the_worker_when_no_worker_is_alive(staff_client: Client, redis_broker: str) -> None:
    response = staff_client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]
    assert (response.json()["broker"], response.json()["worker"], response.json()["workers_alive"]) == ("ok", "down", 0)


def test_healthz_is_200_while_a_worker_heartbeat_is_fresh(staff_client: Client, redis_broker: str) -> None:
    worker_presence.worker_heartbeat_write(hostname="worker-a", upload_ids=[])

    response = staff_client.get("/healthz?deep=1")

    assert response.status_code == 200, response.json()
    assert response.json()["workers_alive"] == 1
    assert response.json()["queue_depth"] == {"classify": 0, "heatmaps": 0}


FIGURES = {"model_version", "workers_alive", "free_space_mb", "queue_depth"}


def test_only_staff_see_the_figures_anyone_else_the_state_words(
    client: Client, alice: User, second_reviewer: User, redis_broker: str
) -> None:
    """Anyone could read the free space, the number of workers and the queue's length: the probe is public."""
    worker_presence.worker_heartbeat_write(hostname="worker-a", upload_ids=[])
    staff_key = api_token_regenerate(user=second_reviewer)
    askers = {
        "visitor": client,
        "user": client_for(alice),
        "user's key": Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}"),
        "wrong key": Client(HTTP_AUTHORIZATION="Token not-a-key"),
        "staff": client_for(second_reviewer),
        "staff's key": Client(HTTP_AUTHORIZATION=f"Token {staff_key}"),
    }

    shown = {who: askers[who].get("/healthz?deep=1").json() for who in askers}

    assert {who: sorted(FIGURES & set(body)) for who, body in shown.items()} == {
        "visitor": [],
        "user": [],
        "user's key": [],
        "wrong key": [],
        "staff": sorted(FIGURES),
        "staff's key": sorted(FIGURES),
    }
    assert {who: (body["status"], body["worker"]) for who, body in shown.items()} == dict.fromkeys(shown, ("ok", "ok"))


def test_with_the_database_down_a_staff_session_or_key_gets_the_words_not_an_error(
    second_reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who asks is looked up in the database (the session, the key): down, that lookup must not turn the probe
    into a 500 page."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    staff = client_for(second_reviewer)
    staff.defaults["HTTP_AUTHORIZATION"] = f"Token {api_token_regenerate(user=second_reviewer)}"

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(SessionStore, "load", down)
    monkeypatch.setattr("phoneapp.auth_backends.api_token_authenticate", down)
    monkeypatch.setattr("phoneapp.services.health._check_database", lambda connection: "down")

    response = staff.get("/healthz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["database"] and not FIGURES & set(response.json())


def test_healthz_is_503_naming_storage_when_pictures_cannot_be_written(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(self: FileSystemStorage, name: str, content: object) -> str:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(FileSystemStorage, "_save", read_only)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"]
    assert response.json()["storage"] == "unwritable"


def test_a_media_folder_that_does_not_exist_is_said_missing_and_not_made(
    client: Client, settings, tmp_path: Path
) -> None:
    """A deploy whose MEDIA_ROOT was never made read "unwritable", which sent its operator looking at permissions.
    The probe does not make it either: on a volume that is not mounted it would land on the system disk."""
    media = tmp_path / "srv" / "media"
    settings.MEDIA_ROOT = str(media)

    response = client.get("/healthz?web=1")

    assert response.status_code == 503
    assert (response.json()["failing"], response.json()["storage"]) == (["storage"], "missing")
    assert not media.exists()


def test_healthz_is_503_when_the_media_volume_is_nearly_full(client: Client, settings) -> None:
    settings.HEALTH_MIN_FREE_MB = 10**12  # more than any disk has free

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"] and response.json()["storage"] == "low"


def test_the_write_probe_leaves_nothing_behind(client: Client, isolated_storage: Path) -> None:
    client.get("/healthz?deep=1")

    assert [path for path in (isolated_storage / "media").rglob("*") if path.is_file()] == []


def test_a_flood_of_probes_writes_one_probe_file_per_interval_and_a_failed_write_is_tried_again(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/healthz`` is public: each request wrote (and on S3 would have paid for) a file. A good write is trusted
    for a few seconds; a failed one is not, so the probe sees a volume come back at once."""
    from phoneapp.services import health

    writes: list[str] = []
    real_save = FileSystemStorage._save  # type: ignore[attr-defined]  # private, as the other storage tests patch it
    fail = False

    def counted_save(self: FileSystemStorage, name: str, content: object) -> str:
        writes.append(name)
        if fail:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_save(self, name, content)

    now = [1000.0]
    monkeypatch.setattr(FileSystemStorage, "_save", counted_save)
    monkeypatch.setattr(health, "_clock", lambda: now[0])

    assert [client.get("/healthz?web=1").status_code for _ in range(5)] == [200] * 5
    assert len(writes) == 1
    now[0] += health.WRITE_PROBE_INTERVAL_SECONDS
    fail = True
    assert [client.get("/healthz?web=1").json()["storage"] for _ in range(2)] == ["unwritable"] * 2
    assert len(writes) == 3
    fail = False
    assert client.get("/healthz?web=1").status_code == 200
    assert len(writes) == 4


def test_the_web_probe_stays_200_while_no_worker_is_alive_and_names_what_it_did_not_check(
    client: Client, redis_broker: str
) -> None:
    """Uploads are taken and wait as pending while the workers are down: a load balancer polling ``?web=1`` keeps
    the web processes in service, while the full probe says what is wrong."""
    assert client.get("/healthz").status_code == 503

    response = client.get("/healthz?web=1")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["database"], body["storage"]) == ("ok", "ok")
    assert (body["broker"], body["model"], body["worker"]) == ("not checked", "not checked", "not checked")


def test_the_web_probe_is_503_when_pictures_cannot_be_stored(client: Client, settings) -> None:
    settings.HEALTH_MIN_FREE_MB = 10**12  # more than any disk has

    response = client.get("/healthz?web=1")

    assert (response.status_code, response.json()["failing"]) == (503, ["storage"])


def test_with_the_database_down_only_the_database_is_named_failing(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The active version is read from the database: with it down the model is "unknown", not a second failure
    that sends an operator looking at the model files."""
    monkeypatch.setattr("phoneapp.services.health._check_database", lambda connection: "down")

    body = client.get("/healthz").json()

    assert (body["failing"], body["model"]) == (["database"], "unknown")


def test_without_a_broker_the_web_probe_checks_the_model_the_web_process_classifies_with(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("phoneapp.services.health._check_model", lambda: ("unavailable", "scene-lite0-v10"))

    response = client.get("/healthz?web=1")

    assert (response.status_code, response.json()["failing"]) == (503, ["model"])


class UnreachableDatabase:
    """A connection whose every query fails, as when PostgreSQL is down."""

    def cursor(self) -> None:
        raise OSError("connection refused")


def test_an_outage_is_logged_when_it_starts_and_when_it_ends_not_at_every_probe(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import connection

    from phoneapp.services import health

    monkeypatch.setattr(health, "_failures_logged", set())
    caplog.set_level(logging.DEBUG, logger="phoneapp.services.health")
    for _ in range(3):  # a load balancer's probes during the outage
        assert health.health_report(connection=UnreachableDatabase(), web_only=True).database == "down"  # type: ignore[arg-type]
    health.health_report(connection=connection, web_only=True)
    health.health_report(connection=connection, web_only=True)

    said = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records if "database" in r.message]
    assert said == [
        ("ERROR", "health check: database down", True),
        ("DEBUG", "health check: database still down", False),
        ("DEBUG", "health check: database still down", False),
        ("INFO", "health check: database ok again", False),
    ]


def test_a_failure_without_an_exception_is_logged_once_too(
    client: Client,
    isolated_storage: Path,
    settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A missing media folder, no live worker, low space: Django's 503 line was their only trace, and it is gone."""
    from phoneapp.services import health

    monkeypatch.setattr(health, "_failures_logged", set())
    settings.MEDIA_ROOT = str(isolated_storage.parent / "not-mounted")
    caplog.set_level(logging.DEBUG, logger="phoneapp.services.health")
    for _ in range(3):
        assert client.get("/healthz?web=1").status_code == 503
    settings.MEDIA_ROOT = str(isolated_storage)
    assert client.get("/healthz?web=1").status_code == 200

    said = [(r.levelname, r.getMessage()) for r in caplog.records if "storage" in r.getMessage()]
    assert said == [("ERROR", "health check: storage missing"), ("INFO", "health check: storage ok again")]


def test_django_does_not_log_an_error_for_each_unhealthy_probe(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The 503 is the answer the probe asks for; the health check's own lines say what failed."""
    monkeypatch.setattr("phoneapp.services.health._check_database", lambda connection: "down")

    assert client.get("/healthz").status_code == 503
    assert client.get("/nowhere-at-all").status_code == 404

    assert [r.getMessage() for r in caplog.records if r.name == "django.request"] == ["Not Found: /nowhere-at-all"]

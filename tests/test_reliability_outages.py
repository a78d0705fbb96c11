"""Outages answer like outages: database, storage or broker failing during a request gives a 503 with
Retry-After (JSON for the API, a page for people) or, for the broker, a kept upload -- and nothing half-written
stays behind: no file without a row, no row without a file."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import FileSystemStorage
from django.db import OperationalError
from django.test import Client

from phoneapp.models import Upload, UploadStatus
from tests.images import picture_bytes, uploaded_file

pytestmark = pytest.mark.django_db(transaction=True)


def stored_files(media: Path) -> list[Path]:
    return sorted(path for path in media.rglob("*") if path.is_file())


def three_pictures() -> list[object]:
    return [uploaded_file(f"p{n}.png", picture_bytes("PNG", color=(n * 60, 80, 120))) for n in range(3)]


@pytest.fixture
def disk_fills_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The storage creates the file, writes part of it, then the disk is full (ENOSPC) -- on the third write."""
    original_save = FileSystemStorage._save  # type: ignore[attr-defined]  # private: django-stubs leave it out
    calls: list[str] = []

    def save_then_fill_the_disk(self: FileSystemStorage, name: str, content: object) -> str:
        calls.append(name)
        if len(calls) < 3:
            return original_save(self, name, content)
        path = Path(self.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 half a picture")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(FileSystemStorage, "_save", save_then_fill_the_disk)
    return calls


def test_disk_full_mid_write_answers_json_503_and_leaves_no_file_and_no_row(
    alice_client: Client, isolated_storage: Path, disk_fills_up: list[str], heatmaps_off: None
) -> None:
    response = alice_client.post("/api/uploads/", {"image": three_pictures()})

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert "nothing was saved" in response.json()["error"]
    assert int(response["Retry-After"]) > 0
    assert len(disk_fills_up) == 3  # two files written whole, the third failed part-way
    assert Upload.objects.count() == 0
    assert stored_files(isolated_storage / "media") == []


def test_disk_full_on_the_web_form_answers_the_503_page(
    alice_client: Client, isolated_storage: Path, disk_fills_up: list[str], heatmaps_off: None
) -> None:
    response = alice_client.post("/", {"image": three_pictures()})

    assert response.status_code == 503
    assert "Retry-After" in response
    assert not response["Content-Type"].startswith("application/json")
    assert Upload.objects.count() == 0
    assert stored_files(isolated_storage / "media") == []


def test_unwritable_media_folder_answers_503_and_stores_nothing(
    alice_client: Client, isolated_storage: Path, settings, heatmaps_off: None
) -> None:
    # A media folder below a regular file cannot be created or written, by root either (chmod would not stop
    # root, and CI runs as root): every write fails with an OSError, as on a volume mounted read-only.
    blocker = isolated_storage / "not-a-folder"
    blocker.write_text("a file where the media volume should be")
    settings.MEDIA_ROOT = str(blocker / "media")

    response = alice_client.post("/api/uploads/", {"image": three_pictures()})

    assert response.status_code == 503
    assert "Retry-After" in response
    assert Upload.objects.count() == 0
    assert stored_files(isolated_storage / "media") == []


def test_database_failing_mid_request_answers_json_503_and_removes_the_written_files(
    alice_client: Client, isolated_storage: Path, monkeypatch: pytest.MonkeyPatch, heatmaps_off: None
) -> None:
    original_save = Upload.save
    saved: list[int] = []

    def save_then_lose_the_database(self: Upload, *args: Any, **kwargs: Any) -> None:
        if saved:
            raise OperationalError("server closed the connection unexpectedly")
        original_save(self, *args, **kwargs)
        saved.append(self.pk)

    monkeypatch.setattr(Upload, "save", save_then_lose_the_database)

    response = alice_client.post("/api/uploads/", {"image": three_pictures()})

    assert response.status_code == 503
    assert response.json() == {"error": "The service is briefly unavailable; nothing was saved. Try again in a moment."}
    assert response["Retry-After"] == "30"
    monkeypatch.setattr(Upload, "save", original_save)
    assert Upload.objects.count() == 0  # the first row rolled back with the transaction
    assert stored_files(isolated_storage / "media") == []  # and its files went with it


def test_database_down_while_reading_a_page_answers_503_not_500(
    alice_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_gone(**_: object) -> object:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("phoneapp.web.views.upload_list", database_gone)
    monkeypatch.setattr("phoneapp.api.views.upload_list", database_gone)

    page = alice_client.get("/history/")
    api = alice_client.get("/api/uploads/")

    assert (page.status_code, api.status_code) == (503, 503)
    assert api.json()["error"] == "The service is briefly unavailable. Try again in a moment."  # nothing was sent
    assert page["Retry-After"] == api["Retry-After"] == "30"


def test_broker_down_during_an_upload_keeps_the_upload_pending_with_201(
    alice_client: Client, alice: User, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For the broker the upload itself is not an outage: file and row are kept and the sweep sends it later."""
    from kombu.exceptions import OperationalError as BrokerError

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    def broker_refuses(*_: object, **__: object) -> None:
        raise BrokerError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr("phoneapp.tasks.upload_classify_task.apply_async", broker_refuses)

    response = alice_client.post("/api/uploads/", {"image": uploaded_file()})

    assert response.status_code == 201
    upload = Upload.objects.get(owner=alice)
    assert upload.status == UploadStatus.PENDING and upload.queued_at is None
    assert upload.image.storage.exists(upload.image.name)


def test_broker_failing_elsewhere_in_a_request_answers_503(
    alice_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.exceptions import OperationalError as BrokerError

    def broker_gone(**_: object) -> object:
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("phoneapp.api.views.upload_list", broker_gone)

    response = alice_client.get("/api/uploads/")

    assert response.status_code == 503
    assert "6379" not in response.content.decode()  # no address leaks


def test_other_errors_stay_500_in_json_for_the_api(monkeypatch: pytest.MonkeyPatch, alice: User) -> None:
    def bug(**_: object) -> object:
        raise ZeroDivisionError

    monkeypatch.setattr("phoneapp.api.views.upload_list", bug)
    client = Client(raise_request_exception=False)
    client.force_login(alice)

    response = client.get("/api/uploads/")

    assert response.status_code == 500
    assert "error" in response.json()


def test_a_worker_never_stops_trying_to_reach_the_broker() -> None:
    """Celery's consumer passes ``broker_connection_max_retries`` to kombu's ``ensure_connection``; its default (100
    tries, about 46 minutes of back-off) made every worker exit in a longer Redis outage (seen with the limit at 3:
    "Unrecoverable error" after 12 s). None means retry forever."""
    from phoneapp.celery import app

    assert app.conf.broker_connection_max_retries is None
    assert app.conf.broker_connection_retry_on_startup is True

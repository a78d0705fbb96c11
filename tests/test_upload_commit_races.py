"""An upload's rows and files across the commit: what happens after it, and a deletion racing a duplicate.

Real commits (transactional tests), on the test database (PostgreSQL in CI, where writers do not queue for one
lock as they do on SQLite).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection

from phoneapp.models import Upload
from phoneapp.services import uploads as upload_service
from phoneapp.services.upload_deletion import upload_delete
from phoneapp.services.uploads import uploads_create
from tests.images import picture_bytes, uploaded_file
from tests.live_services import postgres_require

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_heatmaps(heatmaps_off: None) -> None:
    """Overlays play no part in what these tests prove (see ``heatmaps_off``)."""


def stored(upload: Upload) -> bool:
    return Upload.image.field.storage.exists(upload.image.name)


def test_a_failure_after_the_commit_keeps_the_stored_uploads_and_their_files(
    alice: User, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording which messages left runs after the commit; the database failing then must not make the upload
    service delete the files of rows that are already stored (nor tell the client nothing was saved)."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens: the send fails, queued_at is unmarked

    def database_gone(*args: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("phoneapp.services.classification._record_queued", database_gone)

    [upload] = uploads_create(owner=alice, files=[uploaded_file("desk.jpg", picture_bytes(color=(10, 90, 30)))])

    assert Upload.objects.filter(pk=upload.pk).exists()
    assert stored(upload)


def test_deleting_the_first_copy_while_a_duplicate_is_being_stored_keeps_the_shared_picture(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same picture sent again shares the first upload's file. A deletion of that first upload committed
    while the duplicate's transaction is still open (a slow batch, retention running) must not remove the file the
    duplicate's row is about to name: the duplicate locks its twin, so the deletion waits for it. (Two threads
    writing at once: a SQLite in-memory test database cannot hold them.)"""
    postgres_require(connection)
    data = picture_bytes(color=(200, 30, 60))
    [first] = uploads_create(owner=alice, files=[uploaded_file("first.jpg", data)])
    twin_found = threading.Event()
    deletion_done = threading.Event()
    store_duplicate = upload_service._store_duplicate

    def slow_store_duplicate(**kwargs: Any) -> Upload:
        twin_found.set()
        deletion_done.wait(timeout=1.5)  # with the lock the deletion cannot finish meanwhile: it waits for us
        return store_duplicate(**kwargs)

    monkeypatch.setattr(upload_service, "_store_duplicate", slow_store_duplicate)

    def delete_first() -> None:
        try:
            twin_found.wait(timeout=10)
            upload_delete(upload=first)
            deletion_done.set()
        finally:
            connection.close()

    deleter = threading.Thread(target=delete_first)
    deleter.start()
    started = time.monotonic()
    [duplicate] = uploads_create(owner=alice, files=[uploaded_file("again.jpg", data)])
    deleter.join(timeout=30)

    assert not deleter.is_alive()
    assert not Upload.objects.filter(pk=first.pk).exists()
    assert duplicate.image.name == first.image.name
    assert stored(duplicate), "the duplicate's row names a picture the deletion removed"
    assert time.monotonic() - started < 20
    assert Path(Upload.image.field.storage.path(duplicate.image.name)).is_file()

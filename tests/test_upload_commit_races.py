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

from phoneapp.models import Upload, UploadRequest
from phoneapp.services import upload_requests
from phoneapp.services import uploads as upload_service
from phoneapp.services.upload_deletion import upload_delete
from phoneapp.services.upload_requests import UploadsAnswer, uploads_create_once
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


def test_two_requests_with_one_idempotency_key_at_once_store_one_set_of_uploads(
    alice: User, monkeypatch: pytest.MonkeyPatch, isolated_storage: Path
) -> None:
    """A client's retry racing its first try: both look for the key before either has committed, both go on to
    store. The second's key row waits at the unique constraint for the first's commit, fails, and the second is
    answered the first's uploads; nothing of its own stays, in the database or in storage."""
    postgres_require(connection)
    data = picture_bytes(color=(40, 200, 90))
    both_looked = threading.Barrier(2, timeout=10)
    lookup = upload_requests._earlier_request
    looks: list[bool] = []

    def look_then_wait_for_the_other(*, owner: User, key: str) -> UploadRequest | None:
        found = lookup(owner=owner, key=key)
        looks.append(found is not None)
        if len(looks) <= 2:
            both_looked.wait()
        return found

    monkeypatch.setattr(upload_requests, "_earlier_request", look_then_wait_for_the_other)
    answers: list[UploadsAnswer] = []

    def send() -> None:
        try:
            files = [uploaded_file("desk.jpg", data)]
            answers.append(uploads_create_once(owner=alice, files=files, key="retry-racing-its-first-try"))
        finally:
            connection.close()

    other = threading.Thread(target=send)
    other.start()
    send()
    other.join(timeout=30)

    assert not other.is_alive()
    assert looks[:2] == [False, False], "both requests must have looked before either stored the key"
    assert sorted(answer.replayed for answer in answers) == [False, True]
    assert answers[0].uploads[0].pk == answers[1].uploads[0].pk
    assert Upload.objects.count() == 1
    [upload] = Upload.objects.all()
    its_files = {name for name in (upload.image.name, upload.thumbnail.name, upload.heatmap.name) if name}
    media = isolated_storage / "media"
    assert {str(path.relative_to(media)) for path in media.rglob("*") if path.is_file()} == its_files

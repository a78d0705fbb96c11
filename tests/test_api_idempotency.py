"""``Idempotency-Key`` on ``POST /api/uploads/``: a client retrying after a lost answer gets the first request's
uploads, not copies; a key is its sender's, kept a day, and refused when reused for other pictures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from phoneapp.models import Upload, UploadRequest
from phoneapp.services import upload_requests
from phoneapp.services.upload_requests import upload_requests_forget_expired
from tests.images import picture_bytes, uploaded_file

if TYPE_CHECKING:
    # What the test client returns (a stubs-only name: the response with .json() added).
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse
    from pytest_django.fixtures import Settings as SettingsFixture

pytestmark = pytest.mark.django_db


def pictures(*colours: int) -> list[SimpleUploadedFile]:
    """Fresh file objects each call (a request reads them to the end), the same bytes for the same colours."""
    return [uploaded_file(f"p{colour}.jpg", picture_bytes(color=(colour, 90, 160))) for colour in colours]


def send(client: Client, files: list[SimpleUploadedFile], key: str | None = None) -> TestResponse:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post("/api/uploads/", {"image": files}, headers=headers)


def stored_files(isolated_storage: Path) -> list[Path]:
    return sorted(path for path in (isolated_storage / "media").rglob("*") if path.is_file())


def test_a_retry_with_the_same_key_answers_the_first_uploads_and_stores_nothing(
    alice_client: Client, isolated_storage: Path
) -> None:
    first = send(alice_client, pictures(10, 20), key="a7c1e0f2-retry")
    files_after_first = stored_files(isolated_storage)
    retry = send(alice_client, pictures(10, 20), key="a7c1e0f2-retry")

    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    assert retry.status_code == 200
    assert retry["Idempotent-Replayed"] == "true"
    assert [result["id"] for result in retry.json()] == [result["id"] for result in first.json()]
    assert Upload.objects.count() == 2
    assert stored_files(isolated_storage) == files_after_first


def test_without_a_key_the_same_pictures_sent_again_are_new_uploads(alice_client: Client) -> None:
    assert send(alice_client, pictures(10)).status_code == 201
    assert send(alice_client, pictures(10)).status_code == 201
    assert Upload.objects.count() == 2


def test_the_same_key_with_other_pictures_is_refused_and_stores_nothing(alice_client: Client) -> None:
    send(alice_client, pictures(10, 20), key="one-key")
    reordered = send(alice_client, pictures(20, 10), key="one-key")
    other = send(alice_client, pictures(30), key="one-key")

    for refused in (reordered, other):
        assert refused.status_code == 422
        assert "other pictures" in refused.json()["error"]
    assert Upload.objects.count() == 2


def test_a_key_is_its_senders_own(alice_client: Client, bob_client: Client, bob: User) -> None:
    alices = send(alice_client, pictures(10), key="shared-name")
    bobs = send(bob_client, pictures(10), key="shared-name")

    assert bobs.status_code == 201
    assert bobs.json()[0]["id"] != alices.json()[0]["id"]
    assert Upload.objects.get(pk=bobs.json()[0]["id"]).owner == bob


def test_a_key_older_than_a_day_is_forgotten_and_the_pictures_stored_again(alice_client: Client) -> None:
    send(alice_client, pictures(10), key="yesterday")
    UploadRequest.objects.update(created=timezone.now() - timedelta(hours=24, minutes=1))

    again = send(alice_client, pictures(10), key="yesterday")

    assert again.status_code == 201
    assert Upload.objects.count() == 2
    assert UploadRequest.objects.get().upload_ids == [again.json()[0]["id"]]


def test_the_hourly_sweep_deletes_only_expired_keys(alice: User) -> None:
    UploadRequest.objects.create(owner=alice, key="old", fingerprint="0" * 64)
    UploadRequest.objects.create(owner=alice, key="new", fingerprint="0" * 64)
    UploadRequest.objects.filter(key="old").update(created=timezone.now() - timedelta(hours=25))

    assert upload_requests_forget_expired() == 1
    assert list(UploadRequest.objects.values_list("key", flat=True)) == ["new"]


def test_the_sweep_is_on_the_beat_schedule(settings) -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "phoneapp.tasks.upload_requests_forget_expired_task" in tasks


def test_after_its_uploads_are_deleted_a_key_forgets_its_pictures_and_a_retry_stores_nothing(
    alice_client: Client,
) -> None:
    """The fingerprint is derived from the pictures' bytes: it must not outlive them. A late retry is refused rather
    than storing again what its owner deleted."""
    first = send(alice_client, pictures(10, 20, 30), key="k")
    ids = [result["id"] for result in first.json()]
    assert alice_client.delete(f"/api/uploads/{ids[1]}/").status_code == 204

    record = UploadRequest.objects.get()
    assert (record.fingerprint, record.upload_ids) == ("", [])
    retry = send(alice_client, pictures(10, 20, 30), key="k")

    assert retry.status_code == 409
    assert "deleted since" in retry.json()["error"]
    assert sorted(Upload.objects.values_list("pk", flat=True)) == [ids[0], ids[2]]


@pytest.mark.parametrize("door", ["delete all", "retention"])
def test_deleting_all_pictures_or_retention_leaves_no_fingerprint(
    alice_client: Client, alice: User, door: str, settings
) -> None:
    from django.core.management import call_command

    from phoneapp.services.upload_deletion import uploads_delete_all_of

    kept = send(alice_client, pictures(40), key="untouched")
    send(alice_client, pictures(10, 20), key="goes")
    gone = Upload.objects.exclude(pk=kept.json()[0]["id"])
    if door == "delete all":
        uploads_delete_all_of(owner=alice, up_to_id=max(gone.values_list("pk", flat=True)))
    else:
        settings.RETENTION_DAYS = 1
        gone.update(created=timezone.now() - timedelta(days=2))
        call_command("delete_expired_uploads")

    fingerprints = dict(UploadRequest.objects.values_list("key", "fingerprint"))
    if door == "delete all":
        assert fingerprints == {"untouched": "", "goes": ""}
    else:
        assert fingerprints["goes"] == "" and len(fingerprints["untouched"]) == 64


def test_expired_keys_go_at_the_next_keyed_request_without_beat(alice_client: Client, alice: User) -> None:
    UploadRequest.objects.create(owner=alice, key="old", fingerprint="0" * 64)
    UploadRequest.objects.update(created=timezone.now() - timedelta(hours=25))

    send(alice_client, pictures(10), key="new")

    assert list(UploadRequest.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.parametrize("key", ["", "   ", '" "', "x" * 256, "clé", "tab\there"])
def test_a_malformed_key_is_refused_and_stores_nothing(alice_client: Client, key: str) -> None:
    refused = send(alice_client, pictures(10), key=key)

    assert refused.status_code == 400
    assert "Idempotency-Key" in refused.json()["error"]
    assert Upload.objects.count() == 0


def test_the_drafts_quoted_form_is_the_same_key(alice_client: Client) -> None:
    first = send(alice_client, pictures(10), key='"8e03978e-40d5"')
    retry = send(alice_client, pictures(10), key="8e03978e-40d5")

    assert retry.status_code == 200
    assert retry.json()[0]["id"] == first.json()[0]["id"]


def test_a_refused_request_stores_no_key_so_its_corrected_retry_is_stored(alice_client: Client) -> None:
    not_a_picture = uploaded_file("notes.jpg", b"this is not a picture")
    assert send(alice_client, [*pictures(10), not_a_picture], key="fix-and-retry").status_code == 400

    corrected = send(alice_client, pictures(10), key="fix-and-retry")

    assert corrected.status_code == 201
    assert Upload.objects.count() == 1


def test_retries_spend_none_of_the_rate_budget(alice_client: Client, settings) -> None:
    settings.UPLOAD_RATE_LIMIT = "2/minute"
    assert send(alice_client, pictures(10), key="k").status_code == 201
    for _ in range(3):
        assert send(alice_client, pictures(10), key="k").status_code == 200

    assert send(alice_client, pictures(20)).status_code == 201
    assert send(alice_client, pictures(30)).status_code == 429


def test_a_retry_of_a_request_that_spent_the_whole_budget_is_answered_not_refused(
    alice_client: Client, settings
) -> None:
    """The limit was charged before the key was looked at: the retry got 429 though it would store nothing."""
    settings.UPLOAD_RATE_LIMIT = "2/minute"
    first = send(alice_client, pictures(10, 20), key="whole-budget")
    retry = send(alice_client, pictures(10, 20), key="whole-budget")

    assert (first.status_code, retry.status_code) == (201, 200)
    assert send(alice_client, pictures(30)).status_code == 429  # the budget itself is still spent


def test_someone_elses_key_does_not_pass_the_rate_limit(
    alice_client: Client, bob_client: Client, settings: SettingsFixture
) -> None:
    """Any key someone had sent counted as a retry: Bob, out of budget, kept uploading under Alice's key."""
    settings.UPLOAD_RATE_LIMIT = "2/minute"
    assert send(alice_client, pictures(10), key="alices-key").status_code == 201
    assert send(bob_client, pictures(20)).status_code == 201
    assert send(bob_client, pictures(30)).status_code == 201

    borrowed = send(bob_client, pictures(40), key="alices-key")

    assert borrowed.status_code == 429
    assert Upload.objects.count() == 3


def test_a_retry_racing_its_first_try_is_answered_with_the_first_ones_uploads(
    alice_client: Client, isolated_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests with one key at once: both look, find nothing, and both store. The second's key row collides
    with the first's at the unique constraint, so it stores nothing and answers the first one's uploads."""
    first = send(alice_client, pictures(10), key="racing")
    files_after_first = stored_files(isolated_storage)
    lookup = upload_requests._earlier_request
    looks = []

    def not_committed_yet_at_the_first_look(*, owner: User, key: str) -> UploadRequest | None:
        looks.append(key)
        return None if len(looks) == 1 else lookup(owner=owner, key=key)

    monkeypatch.setattr(upload_requests, "_earlier_request", not_committed_yet_at_the_first_look)
    second = send(alice_client, pictures(10), key="racing")

    assert len(looks) == 2
    assert second.status_code == 200
    assert second.json()[0]["id"] == first.json()[0]["id"]
    assert Upload.objects.count() == 1
    assert stored_files(isolated_storage) == files_after_first


def test_the_schema_documents_the_header_and_its_answers(alice_client: Client) -> None:
    schema = alice_client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    upload = schema["paths"]["/api/uploads/"]["post"]

    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in upload["parameters"])
    assert {"200", "201", "409", "422"} <= set(upload["responses"])
    assert "Idempotent-Replayed" in upload["responses"]["200"]["headers"]

"""The JSON API: upload one or many pictures, read verdicts and history; only ever your own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload, UploadStatus
from phoneapp.services.api_tokens import api_token_regenerate
from tests.images import picture_bytes, uploaded_file

if TYPE_CHECKING:
    pass


# Transactional: uploads are classified in on_commit hooks, which a rolled-back test transaction never runs.
pytestmark = pytest.mark.django_db(transaction=True)


def stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()]


def test_upload_one_picture_stores_it_and_the_verdict_lands(alice_client: Client, alice: User) -> None:
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("holiday.jpg")})

    assert response.status_code == 201
    [created] = response.json()
    assert created["url"].endswith(f"/api/uploads/{created['id']}/")
    # No broker: the verdict was written before the answer, so the 201 carries all of it (no second GET needed).
    assert created["status"] == "done" and created["verdict"] in ("phone", "not_phone", "unsure")
    assert 0 <= created["probability"] <= 1 and created["model_version"] == "imagenet-zero-shot"
    detail = alice_client.get(f"/api/uploads/{created['id']}/").json()
    assert detail == created
    assert detail["status"] == "done"
    assert detail["label"] in ("phone", "not_phone")
    assert 0 <= detail["probability"] <= 1
    assert detail["model_version"] == "imagenet-zero-shot"
    assert detail["processed"] is not None
    upload = Upload.objects.get(pk=created["id"])
    assert upload.owner == alice
    assert upload.original_name == "holiday.jpg"
    assert upload.inference_ms is not None and upload.inference_ms > 0


def test_stored_file_name_is_generated_not_the_clients(alice_client: Client, isolated_storage: Path) -> None:
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("../../etc/passwd.jpg")})
    upload = Upload.objects.get(pk=response.json()[0]["id"])
    assert "passwd" not in upload.image.name
    assert upload.image.name.startswith("uploads/")
    assert (isolated_storage / "media" / upload.image.name).is_file()


def test_upload_many_pictures_in_one_request(alice_client: Client) -> None:
    files = [uploaded_file(f"p{i}.png", picture_bytes("PNG"), "image/png") for i in range(3)]
    response = alice_client.post("/api/uploads/", {"image": files})
    assert response.status_code == 201
    assert len(response.json()) == 3
    assert Upload.objects.filter(status=UploadStatus.DONE).count() == 3


def test_one_bad_file_refuses_the_whole_request_and_stores_nothing(
    alice_client: Client, isolated_storage: Path
) -> None:
    files = [uploaded_file("good.jpg"), uploaded_file("bad.jpg", b"this is text, not a picture")]
    response = alice_client.post("/api/uploads/", {"image": files})
    assert response.status_code == 400
    assert "bad.jpg" in response.json()["error"]
    assert Upload.objects.count() == 0
    assert stored_files(isolated_storage / "media") == []


def test_empty_request_gets_a_clear_message(alice_client: Client) -> None:
    response = alice_client.post("/api/uploads/", {})
    assert response.status_code == 400
    assert "No picture was sent" in response.json()["error"]


def test_history_lists_only_my_uploads_newest_first(alice_client: Client, bob_client: Client) -> None:
    first = alice_client.post("/api/uploads/", {"image": uploaded_file("first.jpg")}).json()[0]["id"]
    second = alice_client.post("/api/uploads/", {"image": uploaded_file("second.jpg")}).json()[0]["id"]
    bob_client.post("/api/uploads/", {"image": uploaded_file("bobs.jpg")})

    page = alice_client.get("/api/uploads/").json()
    assert page["count"] == 2
    assert [item["id"] for item in page["results"]] == [second, first]


def test_history_is_paginated(alice_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # DRF reads PAGE_SIZE (HISTORY_PAGE_SIZE) once, into the paginator class, when it is first imported.
    monkeypatch.setattr("rest_framework.pagination.PageNumberPagination.page_size", 2)
    files = [uploaded_file(f"p{i}.jpg") for i in range(5)]
    created = alice_client.post("/api/uploads/", {"image": files})
    assert created.status_code == 201, created.content

    pages = [alice_client.get(f"/api/uploads/?page={n}").json() for n in (1, 2, 3)]

    assert [page["count"] for page in pages] == [5, 5, 5]
    assert [len(page["results"]) for page in pages] == [2, 2, 1]
    assert pages[0]["next"].endswith("page=2") and pages[2]["next"] is None
    names = [row["original_name"] for page in pages for row in page["results"]]
    assert sorted(names) == [f"p{i}.jpg" for i in range(5)]  # every upload once, none repeated across pages
    assert alice_client.get("/api/uploads/?page=4").status_code == 404


def test_another_users_upload_answers_404(alice_client: Client, bob_client: Client) -> None:
    upload_id = alice_client.post("/api/uploads/", {"image": uploaded_file()}).json()[0]["id"]
    assert bob_client.get(f"/api/uploads/{upload_id}/").status_code == 404
    assert alice_client.get(f"/api/uploads/{upload_id}/").status_code == 200


def test_anonymous_caller_is_refused(client: Client) -> None:
    assert client.get("/api/uploads/").status_code in (401, 403)
    assert client.post("/api/uploads/", {"image": uploaded_file()}).status_code in (401, 403)
    assert Upload.objects.count() == 0


def test_token_authentication_works_for_scripts(alice: User) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")
    response = client.post("/api/uploads/", {"image": uploaded_file()})
    assert response.status_code == 201
    assert client.get("/api/uploads/").json()["count"] == 1


def test_without_a_broker_the_created_response_already_says_done(alice_client: Client) -> None:
    [created] = alice_client.post("/api/uploads/", {"image": uploaded_file("quick.jpg")}).json()
    assert created["status"] == "done"

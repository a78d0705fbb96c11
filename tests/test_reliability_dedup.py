"""The same file uploaded twice by the same user: one stored picture, the verdict reused, both uploads listed.

Decision (docs/reliability.md): every request makes its own upload row (the history shows what the user did,
with each file name), but a repeated file shares the first upload's stored picture and thumbnail, and takes
its verdict when that verdict came from the model version active now.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload, UploadStatus
from phoneapp.services.model_versions import model_version_register
from tests.images import picture_bytes, uploaded_file

# Transactional: the first upload must really be classified (on commit) for its verdict to be reusable.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_heatmaps(heatmaps_off: None) -> None:
    """Overlays play no part in what these tests prove (see ``heatmaps_off``)."""


PHOTO = picture_bytes("JPEG", width=300, height=200, color=(10, 140, 90))


def stored_pictures(isolated_storage: Path) -> list[Path]:
    return [path for path in (isolated_storage / "media" / "uploads").rglob("*") if path.is_file()]


def post(client: Client, name: str, data: bytes = PHOTO) -> dict:
    response = client.post("/api/uploads/", {"image": uploaded_file(name, data)})
    assert response.status_code == 201, response.content
    return response.json()[0]


def test_same_file_twice_is_stored_once_and_the_verdict_reused(alice_client: Client, isolated_storage: Path) -> None:
    first = post(alice_client, "IMG_1.jpg")
    second = post(alice_client, "IMG_1 copy.jpg")

    assert second["status"] == "done"  # answered at once, nothing queued
    one, two = Upload.objects.get(pk=first["id"]), Upload.objects.get(pk=second["id"])
    assert one.image.name == two.image.name
    assert len(stored_pictures(isolated_storage)) == 1
    assert (two.predicted_label, two.probability, two.model_version_id) == (
        one.predicted_label,
        one.probability,
        one.model_version_id,
    )
    assert two.attempts == 0  # the model never ran for it
    listed = {item["id"]: item["original_name"] for item in alice_client.get("/api/uploads/").json()["results"]}
    assert listed == {first["id"]: "IMG_1.jpg", second["id"]: "IMG_1 copy.jpg"}
    assert alice_client.get(f"/uploads/{two.pk}/image").status_code == 200


def test_same_file_twice_in_one_request_is_stored_once(alice_client: Client, isolated_storage: Path) -> None:
    response = alice_client.post(
        "/api/uploads/", {"image": [uploaded_file("a.jpg", PHOTO), uploaded_file("b.jpg", PHOTO)]}
    )

    assert response.status_code == 201
    assert Upload.objects.count() == 2
    assert len(stored_pictures(isolated_storage)) == 1
    assert set(Upload.objects.values_list("status", flat=True)) == {UploadStatus.DONE}


def test_another_users_identical_file_is_not_shared(
    alice_client: Client, bob_client: Client, bob: User, isolated_storage: Path
) -> None:
    """Sharing across users would let one learn what another uploaded; each keeps their own copy."""
    post(alice_client, "mine.jpg")
    bobs = post(bob_client, "his.jpg")

    assert len(stored_pictures(isolated_storage)) == 2
    assert Upload.objects.get(pk=bobs["id"]).attempts == 1  # classified for bob, not copied from alice


def test_verdict_from_an_older_model_is_not_reused(alice_client: Client, settings) -> None:
    first = post(alice_client, "before.jpg")
    source = Path(settings.MODELS_DIR) / "imagenet-zero-shot"
    newer = Path(settings.MODELS_DIR) / "zero-shot-v2"
    shutil.copytree(source, newer)
    manifest = newer / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": "imagenet-zero-shot"', '"version": "zero-shot-v2"'))
    model_version_register(model_dir=newer, activate=True)

    second = post(alice_client, "after.jpg")

    upload = Upload.objects.select_related("model_version").get(pk=second["id"])
    assert upload.status == UploadStatus.DONE
    assert upload.model_version is not None and upload.model_version.name == "zero-shot-v2"
    assert upload.attempts == 1
    assert upload.image.name == Upload.objects.get(pk=first["id"]).image.name  # still one stored picture


def test_refused_request_does_not_delete_a_shared_picture(alice_client: Client, isolated_storage: Path) -> None:
    first = post(alice_client, "keep.jpg")
    response = alice_client.post(
        "/api/uploads/", {"image": [uploaded_file("again.jpg", PHOTO), uploaded_file("bad.jpg", b"nope")]}
    )

    assert response.status_code == 400
    assert Upload.objects.count() == 1
    assert len(stored_pictures(isolated_storage)) == 1
    assert alice_client.get(f"/uploads/{first['id']}/image").status_code == 200

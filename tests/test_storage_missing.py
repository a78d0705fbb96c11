"""A storage folder that is not there (an unmounted volume, a restore not put back yet) and files lost from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client

from phoneapp.models import Upload
from tests.factories import make_upload
from tests.images import picture_bytes, uploaded_file

pytestmark = pytest.mark.django_db


def test_an_upload_to_a_missing_media_folder_is_refused_not_made_on_the_system_disk(
    alice_client: Client, isolated_storage: Path, settings
) -> None:
    """Django's storage makes a missing folder on save: /healthz said "missing" while the first upload made it
    (on the system disk, under an unmounted volume's mount point), and from then on said ok."""
    missing = isolated_storage.parent / "not-mounted" / "media"
    settings.MEDIA_ROOT = str(missing)

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("a.jpg", picture_bytes("JPEG"))})

    assert response.status_code == 503 and "nothing was saved" in response.json()["error"]
    assert not missing.parent.exists() and not Upload.objects.exists()
    assert alice_client.get("/healthz").json()["storage"] == "missing"


def test_a_thumbnail_lost_from_storage_is_stood_in_for_by_the_picture(alice: User, alice_client: Client) -> None:
    """After a restore without it the history drew a broken image: nothing lists a lost thumbnail or redraws it."""
    upload = make_upload(alice, probability=0.9)
    assert upload.thumbnail
    Path(upload.thumbnail.path).unlink()

    response = alice_client.get(f"/uploads/{upload.pk}/thumbnail")

    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    assert b"".join(response.streaming_content) == Path(upload.image.path).read_bytes()

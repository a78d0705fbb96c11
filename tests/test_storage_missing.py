"""A storage folder that is not there (an unmounted volume, a restore not put back yet) and files lost from it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client

from phoneapp.models import Upload
from tests.factories import make_upload
from tests.images import draw_picture, picture_bytes, uploaded_file

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


def test_a_thumbnail_lost_from_storage_is_drawn_again_and_stored(alice: User, alice_client: Client) -> None:
    """After a restore without it the history drew a broken image (then the whole picture, a few MB a card, for
    good): nothing lists a lost thumbnail, so asking for it redraws it, once."""
    from PIL import Image

    upload = make_upload(alice, probability=0.9, picture=draw_picture(width=640, height=480))
    lost = Path(upload.thumbnail.path)
    lost.unlink()

    response = alice_client.get(f"/uploads/{upload.pk}/thumbnail")

    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    drawn = b"".join(response.streaming_content)
    assert Image.open(io.BytesIO(drawn)).size == (320, 240)
    upload.refresh_from_db()
    assert upload.thumbnail.name and Path(upload.thumbnail.path).read_bytes() == drawn  # stored for next time
    assert alice_client.get(f"/uploads/{upload.pk}/thumbnail").status_code == 200


def test_a_lost_thumbnail_of_a_lost_picture_is_a_404(alice: User, alice_client: Client) -> None:
    upload = make_upload(alice, probability=0.9)
    Path(upload.thumbnail.path).unlink()
    Path(upload.image.path).unlink()

    assert alice_client.get(f"/uploads/{upload.pk}/thumbnail").status_code == 404


@pytest.mark.parametrize("asked", ["image", "thumbnail"])
def test_a_lost_tiff_is_a_404_where_its_jpeg_would_be_drawn(alice: User, alice_client: Client, asked: str) -> None:
    """Pages show a TIFF as a JPEG drawn on request (browsers cannot draw TIFF); its file gone answered 500."""
    upload = make_upload(
        alice, status="pending", probability=None, data=picture_bytes("TIFF"), content_type="image/tiff"
    )
    Upload.objects.filter(pk=upload.pk).update(thumbnail="")  # pending: its thumbnail is drawn on request too
    Path(upload.image.path).unlink()

    response = alice_client.get(f"/uploads/{upload.pk}/{asked}")

    assert response.status_code == 404


def test_a_stored_tiff_that_no_longer_reads_is_a_404_not_a_500(alice: User, alice_client: Client) -> None:
    upload = make_upload(alice, data=b"II*\x00 damaged on disk", content_type="image/tiff")

    assert alice_client.get(f"/uploads/{upload.pk}/image").status_code == 404

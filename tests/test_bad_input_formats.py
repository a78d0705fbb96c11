"""The good side of input checking: every accepted format is stored and served as decided.

Decision (docs/reliability.md): JPEG, PNG, WebP, GIF, BMP and TIFF are stored byte for byte; HEIC is stored
re-encoded as JPEG. Sizes are the upright (EXIF-rotated) ones, what the owner sees.
"""

from __future__ import annotations

import io

import pillow_heif
import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from PIL import Image, ImageChops

from phoneapp.models import Upload, UploadStatus
from tests.images import draw_picture, encode, uploaded_file

ACCEPTED = {
    # format: (file name, Pillow format, content type served)
    "JPEG": ("a.jpg", "JPEG", "image/jpeg"),
    "PNG": ("a.png", "PNG", "image/png"),
    "WebP": ("a.webp", "WEBP", "image/webp"),
    "BMP": ("a.bmp", "BMP", "image/bmp"),
    "TIFF": ("a.tiff", "TIFF", "image/tiff"),
    "GIF": ("a.gif", "GIF", "image/gif"),
}
# Formats that can carry anything after the picture are stored rewritten from their pixels; the others as sent.
REWRITTEN = frozenset({"BMP", "TIFF"})


def heic_bytes(width: int = 160, height: int = 120) -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(draw_picture(width=width, height=height)).save(buffer, quality=80)
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [draw_picture(width=120, height=90, color=(i * 60, 20, 20)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(ACCEPTED))
def test_accepted_format_is_stored_as_sent_or_rewritten_from_its_pixels_and_served_with_its_type(
    kind: str, alice_client: Client, alice: User, deployed_models: None, django_capture_on_commit_callbacks
) -> None:
    name, pillow_format, content_type = ACCEPTED[kind]
    data = animated_gif() if kind == "GIF" else encode(draw_picture(width=200, height=150), pillow_format)

    with django_capture_on_commit_callbacks(execute=True):  # classified in-process (no broker): thumbnail drawn
        response = alice_client.post("/api/uploads/", {"image": uploaded_file(name, data, "application/octet-stream")})

    assert response.status_code == 201, response.content
    upload = Upload.objects.get(owner=alice)
    assert upload.content_type == content_type
    stored = upload.image.open("rb").read()
    if kind in REWRITTEN:  # rewritten from its pixels (picture_metadata): the same picture, not the same bytes
        with Image.open(io.BytesIO(stored)) as kept, Image.open(io.BytesIO(data)) as sent:
            assert (kept.format, kept.size) == (pillow_format, sent.size)
            assert ImageChops.difference(kept.convert("RGB"), sent.convert("RGB")).getbbox() is None
    else:
        assert stored == data
    served = alice_client.get(f"/api/uploads/{upload.pk}/image")  # the download: the stored file
    assert served["Content-Type"] == content_type
    assert isinstance(served, StreamingHttpResponse) and b"".join(served.streaming_content) == stored
    thumbnail = alice_client.get(f"/uploads/{upload.pk}/thumbnail")  # drawn by the (in-process) worker
    assert thumbnail["Content-Type"] == "image/jpeg"
    shown = alice_client.get(f"/uploads/{upload.pk}/image")  # what the pages draw
    assert isinstance(shown, StreamingHttpResponse)
    shown_bytes = b"".join(shown.streaming_content)
    if kind == "TIFF":  # browsers cannot draw TIFF: the pages get the whole picture as a JPEG
        assert (shown["Content-Type"], shown["Content-Disposition"]) == ("image/jpeg", 'inline; filename="a.jpg"')
        assert Image.open(io.BytesIO(shown_bytes)).size == (200, 150)
    else:
        assert (shown["Content-Type"], shown_bytes) == (content_type, stored)


@pytest.mark.django_db
def test_heic_is_accepted_and_stored_as_jpeg(alice_client: Client, alice: User) -> None:
    data = heic_bytes(160, 120)

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("IMG_0001.HEIC", data, "image/heic")})

    assert response.status_code == 201, response.content
    upload = Upload.objects.get(owner=alice)
    assert (upload.content_type, upload.width, upload.height) == ("image/jpeg", 160, 120)
    # Saved from the API under the name it was sent with, ending as what it now is (the stored name is random).
    served = alice_client.get(f"/api/uploads/{upload.pk}/image")
    assert served["Content-Disposition"] == 'inline; filename="IMG_0001.jpg"'
    assert upload.image.name.endswith(".jpg")
    with Image.open(upload.image.open("rb")) as stored:
        assert stored.format == "JPEG"
    served = alice_client.get(f"/uploads/{upload.pk}/image")
    assert served["Content-Type"] == "image/jpeg"


@pytest.mark.django_db
def test_truncated_heic_is_refused(alice_client: Client) -> None:
    data = heic_bytes(640, 480)
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("cut.heic", data[: len(data) // 2])})
    assert response.status_code == 400
    assert "cut.heic" in response.json()["error"]
    assert Upload.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_heic_upload_gets_a_verdict(alice_client: Client) -> None:
    """The worker decodes what was stored (a JPEG), so a HEIC upload is classified like any other."""
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("IMG_0002.heic", heic_bytes())})
    upload = Upload.objects.get(pk=response.json()[0]["id"])
    assert upload.status == UploadStatus.DONE, upload.error


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("stored", "thumbnail_size"),
    [
        ((200, 150), (150, 200)),
        # A camera photo: the web process decodes it only at 1/8 scale, yet must record its real size.
        ((2400, 1800), (240, 320)),
    ],
)
def test_exif_rotated_photo_is_recorded_upright(
    alice_client: Client,
    alice: User,
    stored: tuple[int, int],
    thumbnail_size: tuple[int, int],
    deployed_models: None,
    django_capture_on_commit_callbacks,
) -> None:
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90°) is taller than wide to a person."""
    picture = draw_picture(width=stored[0], height=stored[1])
    exif = picture.getexif()
    exif[0x0112] = 6
    data = encode(picture, "JPEG", exif=exif.tobytes())

    with django_capture_on_commit_callbacks(execute=True):  # the worker (in-process here) draws the thumbnail
        response = alice_client.post("/api/uploads/", {"image": uploaded_file("sideways.jpg", data)})

    assert response.status_code == 201
    upload = Upload.objects.get(owner=alice)
    assert (upload.width, upload.height) == (stored[1], stored[0])
    assert upload.image.open("rb").read() == data  # stored as sent: the orientation tag travels with it
    with Image.open(upload.thumbnail.open("rb")) as thumbnail:
        assert thumbnail.size == thumbnail_size  # already upright, filling the 320-pixel box where it can


@pytest.mark.django_db
def test_picture_at_the_pixel_limit_is_accepted_and_one_pixel_more_is_not(alice_client: Client, settings) -> None:
    settings.UPLOAD_MAX_PIXELS = 200 * 150
    exact = encode(draw_picture(width=200, height=150), "PNG")
    wider = encode(draw_picture(width=201, height=150), "PNG")

    accepted = alice_client.post("/api/uploads/", {"image": uploaded_file("exact.png", exact)})
    refused = alice_client.post("/api/uploads/", {"image": uploaded_file("wider.png", wider)})

    assert accepted.status_code == 201
    assert refused.status_code == 400
    assert "pixels" in refused.json()["error"]
    assert Upload.objects.count() == 1


def test_a_jpeg_over_the_pixel_limit_is_accepted_and_decoded_smaller_but_other_formats_are_not(
    alice_client: Client, settings
) -> None:
    """48- and 50-megapixel phone cameras write JPEGs over the 40-megapixel limit; a JPEG can be decoded at a
    half, quarter or eighth of its size, so the limit holds for what is decoded and the photo is not refused."""
    settings.UPLOAD_MAX_PIXELS = 200 * 150
    big_jpeg = encode(draw_picture(width=400, height=300), "JPEG")
    big_png = encode(draw_picture(width=400, height=300), "PNG")

    accepted = alice_client.post("/api/uploads/", {"image": uploaded_file("camera.jpg", big_jpeg)})
    refused = alice_client.post("/api/uploads/", {"image": uploaded_file("scan.png", big_png)})

    assert accepted.status_code == 201, accepted.content
    [created] = accepted.json()
    assert (created["width"], created["height"]) == (400, 300)  # the picture as sent
    assert refused.status_code == 400 and "pixels" in refused.json()["error"]


@pytest.mark.parametrize(
    ("size", "half"), [((8064, 6048), (4032, 3024)), ((8001, 6001), (4001, 3001)), ((12000, 9000), (6000, 4500))]
)
def test_a_48_or_108_megapixel_phone_photo_is_decoded_at_half_size_within_the_default_limit(
    size: tuple[int, int], half: tuple[int, int]
) -> None:
    """Odd sides too: asking Pillow's draft for ceil(w / 2) left an 8001-pixel-wide photo unreduced, refused. A
    108-megapixel photo was refused by Pillow's bomb warning (from ~89 megapixels) before it could be drafted."""
    from inference.images import DEFAULT_MAX_PIXELS, open_image

    photo = encode(Image.new("RGB", size, (120, 60, 30)), "JPEG", quality=80)
    decoded = open_image(photo)
    assert decoded.size == half
    assert decoded.size[0] * decoded.size[1] <= DEFAULT_MAX_PIXELS


@pytest.mark.parametrize(
    ("mode", "scale", "container"),
    [("I;16", 257, "PNG"), ("I;16", 257, "TIFF"), ("I", 257, "TIFF"), ("F", 1 / 255, "TIFF")],
)
def test_high_bit_depth_grey_pictures_are_seen_as_they_look_not_blank(mode: str, scale: float, container: str) -> None:
    """16-bit and floating-point grey (scanners, some cameras' PNG and TIFF) were clipped to solid white by the
    8-bit conversion, and the model judged a blank picture."""
    import numpy as np

    from inference.images import open_image

    grey = np.asarray(draw_picture(width=160, height=120).convert("L"))
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    deep = Image.fromarray((grey.astype(np.float64) * scale).astype(dtype))
    assert deep.mode == mode

    seen = np.asarray(open_image(encode(deep, container)))

    assert seen.shape == (120, 160, 3)
    assert np.abs(seen[..., 0].astype(int) - grey).max() <= 1


def test_a_picture_over_the_limit_is_refused_with_its_size_and_the_limit() -> None:
    """Over ~89 megapixels Pillow's warning came first, and the message gave no numbers; over ~179 its hard limit
    still refuses at opening, with the numbers it knows."""
    from inference.images import ImageError, open_image

    scan = encode(Image.new("1", (10000, 10000)), "PNG")  # 100 megapixels in a few kilobytes
    with pytest.raises(ImageError, match=r"The picture is 10000x10000 pixels; the limit is 40 megapixels"):
        open_image(scan)
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")
    with pytest.raises(ImageError, match=r"more than 178 megapixels, more than any picture can be opened with"):
        open_image(bomb)


@pytest.mark.django_db
@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_a_photo_past_pillows_bomb_warning_is_accepted_and_judged_without_the_warning(
    alice_client: Client,
    alice: User,
    deployed_models: None,
    django_capture_on_commit_callbacks,
    settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every step that opens it (header, metadata, validation, the worker) knows its size is checked; Pillow's
    warning (from ~89 megapixels: a 108-megapixel phone photo) was printed at each, and refused it at validation.
    Both limits scaled down 90 times, so a 1.2-megapixel JPEG takes the same path in a second."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    assert pillow_limit is not None  # Pillow's default: its bomb check is on
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit // 90)  # warns from ~1 megapixel
    settings.UPLOAD_MAX_PIXELS = 40_000_000 // 90
    photo = encode(Image.new("RGB", (1264, 948), (120, 60, 30)), "JPEG", quality=80)

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/api/uploads/", {"image": uploaded_file("108mp.jpg", photo)})

    assert response.status_code == 201, response.content
    upload = Upload.objects.get(owner=alice)
    assert (upload.status, upload.width, upload.height) == ("done", 1264, 948)

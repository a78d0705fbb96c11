"""Stored pictures do not keep where they were taken, nor the camera's or the author's details (README "Privacy")."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from PIL import Image, ImageChops, ImageSequence, PngImagePlugin

from phoneapp.models import Upload
from phoneapp.services.picture_metadata import metadata_stripped
from tests.images import draw_picture, encode, uploaded_file

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
MAKER_NOTE = 0x927C
ORIENTATION = 0x0112
MAKE, MODEL = 0x010F, 0x0110
XMP_WITH_LOCATION = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.5N"/></rdf:RDF></x:xmpmeta>'
)


def phone_photo_exif(*, orientation: int) -> Image.Exif:
    """What a phone writes: GPS position, camera make/model, maker notes, and the orientation."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "PhoneMaker"
    exif[MODEL] = "Phone 12 serial 0042"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    exif.get_ifd(EXIF_IFD).update({MAKER_NOTE: b"secret maker data, owner serial 0042"})
    return exif


def jpeg_with_gps(*, width: int = 200, height: int = 150, orientation: int = 6) -> bytes:
    return encode(
        draw_picture(width=width, height=height),
        "JPEG",
        exif=phone_photo_exif(orientation=orientation).tobytes(),
        comment=b"taken at 12 Example Street",
        xmp=XMP_WITH_LOCATION,
    )


def stored_bytes(upload: Upload) -> bytes:
    with upload.image.open("rb") as handle:
        return handle.read()


@pytest.mark.django_db
def test_uploaded_jpeg_with_gps_is_stored_without_location_camera_or_text(
    alice_client: Client, alice: User, deployed_models: None, django_capture_on_commit_callbacks
) -> None:
    sent = jpeg_with_gps()
    assert b"PhoneMaker" in sent and b"12 Example Street" in sent and b"GPSLatitude" in sent  # the test's own check

    with django_capture_on_commit_callbacks(execute=True):  # classified in-process: the worker draws the thumbnail
        response = alice_client.post("/api/uploads/", {"image": uploaded_file("holiday.jpg", sent)})

    assert response.status_code == 201
    upload = Upload.objects.get(owner=alice)
    stored = stored_bytes(upload)
    for secret in (b"PhoneMaker", b"serial 0042", b"secret maker data", b"12 Example Street", b"GPSLatitude"):
        assert secret not in stored
    with Image.open(io.BytesIO(stored)) as picture:
        exif = picture.getexif()
        assert not exif.get_ifd(GPS_IFD)
        assert not exif.get_ifd(EXIF_IFD)
        assert dict(exif) == {ORIENTATION: 6}  # the orientation, and nothing else, travels with the picture
        picture.load()
        with Image.open(io.BytesIO(sent)) as original:
            # Not re-encoded: the same compressed data, so the very same pixels.
            assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None
    # Still shown upright: recorded upright, thumbnail upright, and what the owner downloads turns the same way.
    assert (upload.width, upload.height) == (150, 200)
    with Image.open(upload.thumbnail.open("rb")) as thumbnail:
        assert thumbnail.size == (150, 200)
    served = alice_client.get(f"/uploads/{upload.pk}/image")
    assert served.status_code == 200
    assert isinstance(served, StreamingHttpResponse) and b"".join(served.streaming_content) == stored
    assert upload.size_bytes == len(stored)
    assert response.json()[0]["size_bytes"] == len(stored) < len(sent)  # the API says what is kept, not what was sent


@pytest.mark.django_db
def test_png_text_chunks_and_exif_location_are_dropped(alice_client: Client, alice: User) -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Alice Example")
    text.add_text("Location", "12 Example Street", zip=True)
    text.add_itxt("Comment", "home, second floor")
    sent = encode(draw_picture(), "PNG", pnginfo=text, exif=phone_photo_exif(orientation=1).tobytes())
    assert b"Alice Example" in sent

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("screen.png", sent)})

    assert response.status_code == 201
    stored = stored_bytes(Upload.objects.get(owner=alice))
    assert b"Alice Example" not in stored and b"home, second floor" not in stored
    with Image.open(io.BytesIO(stored)) as picture:
        assert isinstance(picture, PngImagePlugin.PngImageFile) and picture.text == {}
        assert not picture.getexif()
        with Image.open(io.BytesIO(sent)) as original:
            assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None


@pytest.mark.django_db
def test_webp_exif_location_is_dropped_and_orientation_kept(alice_client: Client, alice: User) -> None:
    sent = encode(draw_picture(), "WEBP", exif=phone_photo_exif(orientation=8).tobytes(), xmp=XMP_WITH_LOCATION)

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("shot.webp", sent)})

    assert response.status_code == 201
    upload = Upload.objects.get(owner=alice)
    stored = stored_bytes(upload)
    assert b"PhoneMaker" not in stored and b"GPSLatitude" not in stored
    with Image.open(io.BytesIO(stored)) as picture:
        assert dict(picture.getexif()) == {ORIENTATION: 8}
        assert picture.size == (320, 240)
    assert (upload.width, upload.height) == (240, 320)


@pytest.mark.django_db
def test_tiff_with_camera_tags_is_stored_without_them_pixels_unchanged(alice_client: Client, alice: User) -> None:
    sent = encode(draw_picture(width=200, height=150), "TIFF", exif=phone_photo_exif(orientation=1).tobytes())
    assert b"PhoneMaker" in sent

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("scan.tif", sent)})

    assert response.status_code == 201
    stored = stored_bytes(Upload.objects.get(owner=alice))
    assert b"PhoneMaker" not in stored
    with Image.open(io.BytesIO(stored)) as picture:
        assert not {GPS_IFD, MAKE, MODEL} & set(picture.getexif())
        with Image.open(io.BytesIO(sent)) as original:  # re-encoded losslessly
            assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None


def animated_gif_with_comment_and_xmp() -> bytes:
    """Three frames that loop forever, a comment, and an XMP application block with a location."""
    frames = [draw_picture(width=120, height=90, color=(60 * index, 90, 200)).convert("P") for index in range(3)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=100, comment=b"taken at 12 Example St"
    )
    gif = buffer.getvalue()
    xmp_blocks = b"".join(
        bytes((len(part),)) + part
        for part in (XMP_WITH_LOCATION[i : i + 255] for i in range(0, len(XMP_WITH_LOCATION), 255))
    )
    xmp = b"\x21\xff\x0bXMP DataXMP" + xmp_blocks + b"\x00"
    return gif[:-1] + xmp + gif[-1:]  # before the trailer


@pytest.mark.django_db
def test_gif_comment_and_xmp_are_dropped_and_the_animation_kept(alice_client: Client, alice: User) -> None:
    sent = animated_gif_with_comment_and_xmp()
    assert b"GPSLatitude" in sent and b"Example St" in sent

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("clip.gif", sent)})

    assert response.status_code == 201
    stored = stored_bytes(Upload.objects.get(owner=alice))
    assert b"GPSLatitude" not in stored and b"Example St" not in stored
    with Image.open(io.BytesIO(stored)) as kept, Image.open(io.BytesIO(sent)) as original:
        assert (getattr(kept, "n_frames", 1), kept.info.get("loop")) == (3, 0)
        for frame in range(3):
            kept.seek(frame)
            original.seek(frame)
            assert ImageChops.difference(kept.convert("RGB"), original.convert("RGB")).getbbox() is None


@pytest.mark.django_db
def test_keep_picture_metadata_stores_the_file_byte_for_byte(alice_client: Client, alice: User, settings) -> None:
    settings.KEEP_PICTURE_METADATA = True
    sent = jpeg_with_gps()

    assert alice_client.post("/api/uploads/", {"image": uploaded_file("holiday.jpg", sent)}).status_code == 201

    assert stored_bytes(Upload.objects.get(owner=alice)) == sent


def test_picture_without_metadata_is_left_as_it_is() -> None:
    plain = encode(draw_picture(), "JPEG")
    assert metadata_stripped(plain, image_format="JPEG") is plain


def test_a_container_that_cannot_be_walked_is_reencoded_clean_and_upright() -> None:
    data = jpeg_with_gps(orientation=6)
    first_segment_end = 4 + int.from_bytes(data[4:6], "big")
    # A stray byte between two segments: Pillow skips it, the segment walk stops there.
    damaged = data[:first_segment_end] + b"\x00" + data[first_segment_end:]
    with Image.open(io.BytesIO(metadata_stripped(damaged, image_format="JPEG"))) as picture:
        assert not picture.getexif()
        assert picture.size == (150, 200)


@pytest.mark.django_db
def test_tiff_free_text_tags_and_a_second_page_are_not_stored(alice_client: Client, alice: User) -> None:
    """Only the first page's best-known personal tags were looked for: document and page names, Windows' XP author
    (and any tag on a second page, which can hold another picture) were stored byte for byte."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    named = ImageFileDirectory_v2()
    named[269] = "SECRET-DOCNAME"  # DocumentName
    named[285] = "SECRET-PAGENAME"  # PageName
    named[0x9C9D] = "SECRET-XPAUTHOR".encode("utf-16-le")  # XPAuthor
    first = io.BytesIO()
    draw_picture(width=64, height=48).save(first, "TIFF", tiffinfo=named)
    second_page = ImageFileDirectory_v2()
    second_page[MAKE] = "SECRET-MAKE"
    two_pages = io.BytesIO()  # the make on the second page only
    pages = [draw_picture(width=64, height=48), Image.new("RGB", (64, 48), "red")]
    pages[1].encoderinfo = {"tiffinfo": second_page}
    pages[0].save(two_pages, "TIFF", save_all=True, append_images=pages[1:])

    for name, sent, secrets in (
        ("named.tif", first.getvalue(), [b"SECRET-DOCNAME", b"SECRET-PAGENAME", "SECRET-XPAUTHOR".encode("utf-16-le")]),
        ("pages.tif", two_pages.getvalue(), [b"SECRET-MAKE"]),
    ):
        assert all(secret in sent for secret in secrets), name  # the test's own check
        response = alice_client.post("/api/uploads/", {"image": uploaded_file(name, sent)})
        assert response.status_code == 201
        stored = stored_bytes(Upload.objects.get(pk=response.json()[0]["id"]))
        assert not [secret for secret in secrets if secret in stored], name
        with Image.open(io.BytesIO(stored)) as picture, Image.open(io.BytesIO(sent)) as original:
            assert getattr(picture, "n_frames", 1) == 1
            assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_jpeg_thumbnails_and_text_in_jfif_jfxx_and_adobe_segments_are_cut_to_their_headers() -> None:
    """APP0 and APP14 were kept whole: a JFXX thumbnail (it can be the uncropped original) and text after the
    Adobe header survived."""
    plain = encode(draw_picture(), "JPEG")
    jfif_end = 4 + int.from_bytes(plain[4:6], "big")
    assert plain[6:11] == b"JFIF\x00"
    thumbnail = bytes(3 * 2 * 2) + b"SECRET-JFIF-THUMB"
    jfif_with_thumbnail = jpeg_segment(0xE0, plain[6:18] + b"\x02\x02" + thumbnail)
    jfxx = jpeg_segment(0xE0, b"JFXX\x00\x10" + b"SECRET-APP0")
    adobe = jpeg_segment(0xEE, b"Adobe\x00d\x00\x00\x00\x00\x01" + b"SECRET-APP14")
    sent = plain[:2] + jfif_with_thumbnail + jfxx + adobe + plain[jfif_end:]
    with Image.open(io.BytesIO(sent)) as picture:  # the test's own check: still a picture
        picture.load()

    stored = metadata_stripped(sent, image_format="JPEG")

    assert b"SECRET" not in stored
    assert stored[:20] == plain[:20]  # the JFIF header as a plain encoder writes it
    assert jpeg_segment(0xEE, b"Adobe\x00d\x00\x00\x00\x00\x01") in stored
    with Image.open(io.BytesIO(stored)) as picture, Image.open(io.BytesIO(sent)) as original:
        assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None


def test_a_re_encoded_tiff_keeps_its_colour_profile() -> None:
    """The profile says what the pixel values mean: dropped with the personal tags, wide-gamut pictures changed
    colour."""
    from PIL import ImageCms
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    named = ImageFileDirectory_v2()
    named[269] = "SECRET-DOCNAME"
    buffer = io.BytesIO()
    draw_picture(width=64, height=48).save(buffer, "TIFF", tiffinfo=named, icc_profile=profile)

    stored = metadata_stripped(buffer.getvalue(), image_format="TIFF")

    assert b"SECRET-DOCNAME" not in stored
    with Image.open(io.BytesIO(stored)) as picture:
        assert picture.info.get("icc_profile") == profile


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow on the garbled pointer, as meant
def test_a_tiff_whose_next_page_pointer_is_garbage_is_still_accepted(alice_client: Client, alice: User) -> None:
    """Counting the pages walks every directory; a garbled pointer after a fine first page (some scanners write
    one) made the upload refused as damaged, where it was accepted before pages were counted."""
    buffer = io.BytesIO()
    draw_picture(width=64, height=48).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    assert data[:4] == b"II*\x00"
    first_directory = int.from_bytes(data[4:8], "little")
    entries = int.from_bytes(data[first_directory : first_directory + 2], "little")
    next_pointer = first_directory + 2 + 12 * entries
    data[next_pointer : next_pointer + 4] = (0x7FFFFFF0).to_bytes(4, "little")

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("scan.tif", bytes(data))})

    assert response.status_code == 201, response.content
    with Image.open(io.BytesIO(stored_bytes(Upload.objects.get(owner=alice)))) as picture:
        assert picture.size == (64, 48)


@pytest.mark.parametrize("image_format", ["BMP", "TIFF"])
def test_bytes_appended_after_a_bmp_or_tiff_are_not_stored(image_format: str) -> None:
    """Their headers say where the pixels are, not where the file ends: a ZIP appended to one was stored whole."""
    sent = encode(draw_picture(width=64, height=48), image_format) + b"PK\x03\x04SECRET-APPENDED"

    stored = metadata_stripped(sent, image_format=image_format)

    assert b"SECRET-APPENDED" not in stored
    with Image.open(io.BytesIO(stored)) as picture, Image.open(io.BytesIO(sent)) as original:
        assert picture.format == image_format
        assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None


XMP_ORIENTATION_6 = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
)


@pytest.mark.django_db
@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_a_picture_turned_only_by_its_xmp_is_kept_as_browsers_show_it(
    image_format: str, alice_client: Client, alice: User
) -> None:
    """Pillow turns a picture by XMP's tiff:Orientation when EXIF has none, browsers do not: the upload recorded it
    turned, then stripping dropped the XMP, so the stored picture, its thumbnail and the model's view disagreed with
    the recorded size. Turned by EXIF alone, everything agrees with what a browser shows, and nothing is re-encoded."""
    from inference.images import open_image

    extra: dict[str, object] = (
        {"xmp": XMP_ORIENTATION_6} if image_format == "JPEG" else {"pnginfo": png_with_xmp(XMP_ORIENTATION_6)}
    )
    sent = encode(draw_picture(width=150, height=200), image_format, **extra)
    with Image.open(io.BytesIO(sent)) as original:  # the test's own check: Pillow would turn it by its XMP
        assert original.size == (150, 200) and original.getexif().get(ORIENTATION) == 6
    assert open_image(sent).size == (150, 200)  # the model's view, even of a copy that keeps its XMP

    response = alice_client.post("/api/uploads/", {"image": uploaded_file(f"turned.{image_format.lower()}", sent)})

    assert response.status_code == 201, response.content
    upload = Upload.objects.get(owner=alice)
    stored = stored_bytes(upload)
    assert b"tiff:Orientation" not in stored
    with Image.open(io.BytesIO(stored)) as picture, Image.open(io.BytesIO(sent)) as original:
        assert picture.size == (150, 200)
        assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None
    assert (upload.width, upload.height) == (150, 200)


def png_with_xmp(xmp: bytes) -> PngImagePlugin.PngInfo:
    """PNG keeps XMP in an iTXt chunk under this keyword."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


@pytest.mark.django_db
def test_a_turned_tiff_is_recorded_at_the_size_it_is_shown(alice_client: Client, alice: User) -> None:
    """Pillow already reports a TIFF with orientation 5-8 upright; the upload turned it a second time, so pages
    sized the picture and its heat map the wrong way round."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    turned = ImageFileDirectory_v2()
    turned[ORIENTATION] = 6
    buffer = io.BytesIO()
    draw_picture(width=150, height=200).save(buffer, "TIFF", tiffinfo=turned)

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("turned.tif", buffer.getvalue())})

    assert response.status_code == 201, response.content
    upload = Upload.objects.get(owner=alice)
    assert (upload.width, upload.height) == (200, 150)
    with Image.open(io.BytesIO(stored_bytes(upload))) as picture:
        assert picture.size == (200, 150)


def srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_a_colour_profile_is_kept_and_anything_else_in_its_place_is_not(image_format: str) -> None:
    """Any bytes labelled as a colour profile were stored (5 MB of them in one test upload): only a real one is."""
    picture = draw_picture(width=64, height=48)
    profile = srgb_profile()
    fake = b"SECRET-NOT-A-PROFILE" * 20
    lossless = {"lossless": True} if image_format == "WEBP" else {}
    with_profile = encode(picture, image_format, icc_profile=profile, **lossless)
    with_fake = encode(picture, image_format, icc_profile=fake, **lossless)
    with Image.open(io.BytesIO(with_fake)) as sent:  # the test's own check: the fake is where a profile goes
        assert sent.info.get("icc_profile") == fake

    with Image.open(io.BytesIO(metadata_stripped(with_profile, image_format=image_format))) as kept:
        assert kept.info.get("icc_profile") == profile
    stored = metadata_stripped(with_fake, image_format=image_format)
    with Image.open(io.BytesIO(stored)) as dropped:
        assert not dropped.info.get("icc_profile") and b"SECRET" not in stored
        dropped.load()


def test_private_png_and_webp_chunks_are_not_stored() -> None:
    """An application's own chunk can hold anything; only the chunks that make or describe the picture are kept."""
    png = encode(draw_picture(width=64, height=48), "PNG")
    private = struct.pack(">I", 14) + b"prVt" + b"SECRET-PRIVATE" + struct.pack(">I", zlib.crc32(b"prVtSECRET-PRIVATE"))
    sent_png = png[:33] + private + png[33:]  # after IHDR
    webp = encode(draw_picture(width=64, height=48), "WEBP", lossless=True)
    chunk = b"prVt" + struct.pack("<I", 14) + b"SECRET-PRIVATE"
    sent_webp = b"RIFF" + struct.pack("<I", len(webp) - 8 + len(chunk)) + webp[8:] + chunk

    for sent, image_format in ((sent_png, "PNG"), (sent_webp, "WEBP")):
        stored = metadata_stripped(sent, image_format=image_format)
        assert b"SECRET-PRIVATE" in sent and b"SECRET-PRIVATE" not in stored, image_format
        with Image.open(io.BytesIO(stored)) as picture, Image.open(io.BytesIO(sent)) as original:
            assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None


def bmp_with_alpha(width: int = 4, height: int = 2) -> bytes:
    """A 32-bit BMP with an alpha mask (BITMAPV4HEADER, BI_BITFIELDS): half its pixels transparent. Pillow reads
    such files as RGBA but cannot write them."""
    pixels = b"".join(bytes((0, 0, 255, 0 if x < width // 2 else 255)) for _ in range(height) for x in range(width))
    header_size, offset = 108, 14 + 108
    info = struct.pack("<IiiHHIIiiII", header_size, width, height, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
    masks = struct.pack("<IIII", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    info += masks + b"sRGB" + bytes(header_size - len(info) - len(masks) - 4)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + pixels


def test_a_bmp_keeps_its_transparency_and_loses_what_was_appended() -> None:
    """Rewriting BMPs from their pixels dropped their alpha (Pillow writes no alpha to BMP): they are cut at the
    size their header declares instead."""
    sent = bmp_with_alpha() + b"PK\x03\x04SECRET-APPENDED"
    with Image.open(io.BytesIO(sent)) as original:  # the test's own check: read with its transparency
        assert original.mode == "RGBA" and original.getchannel("A").getextrema() == (0, 255)

    stored = metadata_stripped(sent, image_format="BMP")

    assert stored == bmp_with_alpha()
    with Image.open(io.BytesIO(stored)) as picture:
        assert picture.mode == "RGBA" and picture.getchannel("A").getextrema() == (0, 255)


def test_gif_plain_text_and_unknown_extensions_are_not_stored() -> None:
    """Only comments and application blocks were dropped: a plain-text block or one with an unknown label kept
    whatever it held."""
    gif = encode(draw_picture(width=32, height=24), "GIF")
    plain_text = b"\x21\x01\x0c" + bytes(12) + b"\x0eSECRET-PLAINTX\x00"
    unknown = b"\x21\x99\x0eSECRET-UNKNOWN\x00"
    sent = gif[:-1] + plain_text + unknown + gif[-1:]  # before the trailer
    with Image.open(io.BytesIO(sent)) as original:  # the test's own check: still a picture
        original.load()

    stored = metadata_stripped(sent, image_format="GIF")

    assert b"SECRET" not in stored
    with Image.open(io.BytesIO(stored)) as picture, Image.open(io.BytesIO(sent)) as original:
        assert ImageChops.difference(picture.convert("RGB"), original.convert("RGB")).getbbox() is None


def test_a_private_chunk_inside_an_animated_webp_frame_is_not_stored() -> None:
    frames = [draw_picture(width=32, height=24, color=(200, 20 * i, 20)) for i in range(2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    data = bytearray(buffer.getvalue())
    at = data.index(b"ANMF")
    length = int.from_bytes(data[at + 4 : at + 8], "little")
    private = b"prVt" + struct.pack("<I", 14) + b"SECRET-IN-ANMF"
    end = at + 8 + length + (length & 1)
    data[at + 4 : at + 8] = struct.pack("<I", length + (length & 1) + len(private))
    data[end:end] = (b"\x00" if length & 1 else b"") + private
    data[4:8] = struct.pack("<I", len(data) - 8)
    sent = bytes(data)
    with Image.open(io.BytesIO(sent)) as original:  # the test's own check: still an animation of two frames
        assert getattr(original, "n_frames", 1) == 2

    stored = metadata_stripped(sent, image_format="WEBP")

    assert b"SECRET-IN-ANMF" not in stored
    with Image.open(io.BytesIO(stored)) as picture:
        assert getattr(picture, "n_frames", 1) == 2


def test_a_colour_profile_with_bytes_its_tags_do_not_account_for_is_not_stored() -> None:
    """A real profile's header and signature with anything appended (its length field set to match) passed."""
    profile = bytearray(srgb_profile() + b"SECRET-RIDING-ALONG" * 10)
    profile[:4] = len(profile).to_bytes(4, "big")
    sent = encode(draw_picture(width=64, height=48), "JPEG", icc_profile=bytes(profile))

    stored = metadata_stripped(sent, image_format="JPEG")

    assert b"SECRET" not in stored


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _before(data: bytes, marker: bytes, inserted: bytes, *, back: int = 0) -> bytes:
    at = data.index(marker) - back
    return data[:at] + inserted + data[at:]


def _hidden_in_kept_blocks(case: str) -> tuple[bytes, str]:
    """A picture that hides SECRET in a block the stripping keeps (helper-59's cases), and its format."""
    secret = b"SECRET-IN-A-KEPT-BLOCK"
    picture = draw_picture(width=64, height=48)
    png, jpeg, gif = encode(picture, "PNG"), encode(picture, "JPEG"), encode(picture, "GIF")
    segment = struct.pack(">H", len(secret) + 2) + secret
    if case == "png gAMA too long":
        return _before(png, b"IDAT", _png_chunk(b"gAMA", struct.pack(">I", 45455) + secret), back=4), "PNG"
    if case == "png pHYs too long":
        return _before(png, b"IDAT", _png_chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1) + secret), back=4), "PNG"
    if case == "png IDAT after the picture data":
        return _before(png, b"IEND", _png_chunk(b"IDAT", secret), back=4), "PNG"
    if case == "png IEND with a payload":
        return png[:-12] + _png_chunk(b"IEND", secret), "PNG"
    if case == "png tRNS of a picture with alpha":
        rgba = encode(picture.convert("RGBA"), "PNG")
        return _before(rgba, b"IDAT", _png_chunk(b"tRNS", secret), back=4), "PNG"
    if case == "png suggested palette of a truecolour picture":
        return _before(png, b"IDAT", _png_chunk(b"PLTE", secret + b"\x00\x00"), back=4), "PNG"
    if case == "png colour profile's zlib stream":
        profile = b"sRGB\x00\x00" + zlib.compress(srgb_profile()) + secret
        return _before(png, b"IDAT", _png_chunk(b"iCCP", profile), back=4), "PNG"
    if case == "png animation frame after its zlib stream":
        buffer = io.BytesIO()
        frames = [picture, draw_picture(width=64, height=48, color=(20, 200, 20))]
        frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:], duration=100)
        apng = buffer.getvalue()
        at = apng.index(b"fdAT") - 4
        length = int.from_bytes(apng[at : at + 4], "big")
        grown = _png_chunk(b"fdAT", apng[at + 8 : at + 8 + length] + secret)
        return apng[:at] + grown + apng[at + 12 + length :], "PNG"
    if case == "jpeg DNL":
        return _before(jpeg, b"\xff\xda", b"\xff\xdc" + segment), "JPEG"
    if case in ("gif graphic control sub-block", "gif looping sub-block"):
        header = (
            b"\x21\xf9\x04\x00\x0a\x00\x00"
            if case.endswith("control sub-block")
            else b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00"
        )
        return _before(gif, b"\x2c", header + bytes((len(secret),)) + secret + b"\x00"), "GIF"
    if case == "bmp gap before the pixels":
        bmp = encode(picture, "BMP")
        pixels_at = int.from_bytes(bmp[10:14], "little")
        sent = bytearray(bmp[:pixels_at] + secret + bmp[pixels_at:])
        sent[2:6], sent[10:14] = len(sent).to_bytes(4, "little"), (pixels_at + len(secret)).to_bytes(4, "little")
        return bytes(sent), "BMP"
    assert case == "webp animation header too long"
    frames = [picture, draw_picture(width=64, height=48, color=(20, 200, 20))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    webp = buffer.getvalue()
    at = webp.index(b"ANIM")
    grown = b"ANIM" + struct.pack("<I", 6 + len(secret)) + webp[at + 8 : at + 14] + secret
    animated = webp[:at] + grown + webp[at + 14 :]
    return b"RIFF" + struct.pack("<I", len(animated) - 8) + animated[8:], "WEBP"


@pytest.mark.parametrize(
    "case",
    [
        "png gAMA too long",
        "png pHYs too long",
        "png IDAT after the picture data",
        "png IEND with a payload",
        "png tRNS of a picture with alpha",
        "png suggested palette of a truecolour picture",
        "png colour profile's zlib stream",
        "png animation frame after its zlib stream",
        "jpeg DNL",
        "gif graphic control sub-block",
        "gif looping sub-block",
        "bmp gap before the pixels",
        "webp animation header too long",
    ],
)
def test_bytes_hidden_in_the_blocks_that_are_kept_are_not_stored(case: str) -> None:
    """The kept blocks were kept whole whatever their length: anything could ride in them (a ZIP, in helper-59's
    test). Each is cut to what its format defines; the picture is the same."""
    sent, image_format = _hidden_in_kept_blocks(case)
    with Image.open(io.BytesIO(sent)) as original:  # the test's own check: the sent file is still a picture
        original.load()

    stored = metadata_stripped(sent, image_format=image_format)

    assert b"SECRET-IN-A-KEPT-BLOCK" in sent and b"SECRET-IN-A-KEPT-BLOCK" not in stored
    with Image.open(io.BytesIO(stored)) as picture, Image.open(io.BytesIO(sent)) as original:
        frames = [frame.convert("RGBA") for frame in ImageSequence.Iterator(picture)]
        original_frames = [frame.convert("RGBA") for frame in ImageSequence.Iterator(original)]
        assert len(frames) == len(original_frames)
        for frame, original_frame in zip(frames, original_frames, strict=True):
            assert ImageChops.difference(frame, original_frame).getbbox() is None

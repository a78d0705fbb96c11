"""Checking an uploaded file before anything is stored: size, and a decode under a pixel limit (the file's content
decides whether it is a picture, never its name or the content type the client sent).

Storage decision: JPEG, PNG, WebP, GIF, BMP and TIFF keep their format and their pixels as uploaded (the worker
decodes them again with the same :func:`inference.images.open_image`), minus personal metadata -- location,
camera serial and maker notes, free text -- which :mod:`phoneapp.services.picture_metadata` removes without
re-encoding unless ``KEEP_PICTURE_METADATA`` is set (then the file is stored byte for byte). HEIC/HEIF (iPhone
photos) is decoded here with ``pillow-heif`` and stored re-encoded as JPEG, because only Safari can display HEIC
and because the worker's decoder accepts only the common formats. Either way the content type we serve comes
from the decoded format, never from the client.

No thumbnail is drawn here: the worker draws it from the picture it decodes for the model
(:mod:`phoneapp.services.thumbnails`), so the web process only checks and stores.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import ImageOps

from inference.images import ImageError, UnsupportedFormat, exif_orientation, open_image, open_quietly
from inference.picture_parts import MAX_PARTS, picture_parts_count
from phoneapp.services.errors import InvalidUpload, UploadTooLarge
from phoneapp.services.picture_metadata import metadata_stripped

HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
ALLOWED_EXTENSIONS = (
    frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}) | HEIF_EXTENSIONS
)
ACCEPTED_DESCRIPTION = "JPEG, PNG, WebP, GIF, BMP, TIFF or HEIC"

# Pillow format name -> (extension we store under, content type we serve with).
_FORMAT_TYPES: dict[str, tuple[str, str]] = {
    "JPEG": (".jpg", "image/jpeg"),
    "MPO": (".jpg", "image/jpeg"),
    "PNG": (".png", "image/png"),
    "WEBP": (".webp", "image/webp"),
    "GIF": (".gif", "image/gif"),
    "BMP": (".bmp", "image/bmp"),
    "TIFF": (".tif", "image/tiff"),
}

HEIF_REENCODE_QUALITY = 92
# Asking Pillow's JPEG draft for a 1x1 picture gives its smallest scale, 1/8 of each side.
SMALLEST_DRAFT = (1, 1)


@dataclass(frozen=True)
class ValidatedImage:
    """Facts about an uploaded picture that passed every check."""

    original_name: str
    # sha256 of the bytes the client sent: two uploads of the same file have the same digest.
    sha256: str
    size_bytes: int
    # Upright (EXIF-rotated) size, i.e. what the owner sees.
    width: int
    height: int
    extension: str
    content_type: str
    # Bytes to store instead of the uploaded ones (HEIC re-encoded as JPEG, metadata removed); None = as uploaded.
    replacement_bytes: bytes | None = None


def validate_image_file(file: UploadedFile) -> ValidatedImage:
    """Return what we need to store ``file``, or raise :class:`InvalidUpload` with a message for the user.

    The whole file is decoded (not just its header), so truncated pictures and decompression bombs are refused
    here rather than failing later in a worker; a JPEG at 1/8 scale (every coded block is still read, so a cut
    or garbled file fails, but the inverse transforms and colour conversion of full-size pixels are skipped).
    """
    name = PurePosixPath(file.name or "upload").name[:255]
    size = file.size or 0
    if size == 0:
        raise InvalidUpload("The file is empty.", file_name=name)
    if size > settings.UPLOAD_MAX_BYTES:
        # In the megabytes of 1024 x 1024 bytes the upload page, upload.js and the request-size refusal use too.
        limit_mb = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
        raise UploadTooLarge(f"The file is larger than the {limit_mb:g} MB limit.", file_name=name)
    data = _read_all(file)
    # Before Pillow reads a part of it: a file of a million empty segments held the web process for seconds.
    if picture_parts_count(data) > MAX_PARTS:
        raise InvalidUpload(
            f"The file is made of more than {MAX_PARTS:,} segments, more than any real picture has.", file_name=name
        )
    if _is_heif(data):
        return _validate_heif(data, name=name)
    header = _read_header(data)
    try:
        return _validate_decodable(data, header, name=name)
    except InvalidUpload as refusal:
        # The content decides, not the name (a JPEG sent as "blob" or "photo" is accepted): the name only words
        # the refusal of a file that is no picture at all, such as notes.txt or logo.svg.
        extension = PurePosixPath(name).suffix.lower()
        if header is None and extension and extension not in ALLOWED_EXTENSIONS:
            raise InvalidUpload(
                f"Files ending in '{extension}' are not accepted; send {ACCEPTED_DESCRIPTION} pictures.",
                file_name=name,
            ) from refusal
        raise


def _validate_decodable(data: bytes, header: _Header | None, *, name: str) -> ValidatedImage:
    """:class:`ValidatedImage` of a picture in one of the formats stored as sent (``header``: what
    :func:`_read_header` read of it), or :class:`InvalidUpload`."""
    try:
        # open_image turns bombs, truncation and unknown formats into messages for the user. Every byte is still
        # decoded (a truncated file fails), a JPEG at the smallest scale Pillow's draft offers (1/8): nothing here
        # needs its pixels, and a full decode of a 12-megapixel photo cost the web process ~10x the rest.
        open_image(data, max_pixels=settings.UPLOAD_MAX_PIXELS, draft_size=SMALLEST_DRAFT)
        if header is None:  # decodable, yet its header could not be read on its own: refuse rather than guess
            raise ImageError("The file is not a picture in a format we can read.")
        stored_extension, content_type = _FORMAT_TYPES[header.format]
    except UnsupportedFormat as error:  # worded with HEIC too, which this app converts itself
        message = f"Unsupported picture format {error.format!r}; send {ACCEPTED_DESCRIPTION} pictures."
        raise InvalidUpload(message, file_name=name) from error
    except ImageError as error:
        raise InvalidUpload(str(error), file_name=name) from error
    except Exception as error:  # any decoder failure on hostile input is the client's problem, not a 500
        raise InvalidUpload("The file is not a picture in a format we can read.", file_name=name) from error
    stored = data if settings.KEEP_PICTURE_METADATA else _without_metadata(data, header.format, name=name)
    return ValidatedImage(
        original_name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(stored),
        width=header.upright_size[0],
        height=header.upright_size[1],
        extension=stored_extension,
        content_type=content_type,
        replacement_bytes=None if stored is data else stored,
    )


def _without_metadata(data: bytes, image_format: str, *, name: str) -> bytes:
    try:
        return metadata_stripped(data, image_format=image_format)
    except Exception as error:  # it decoded, yet cannot be re-encoded clean: refuse rather than store it as is
        raise InvalidUpload("The picture is damaged or incomplete and cannot be read.", file_name=name) from error


def _read_all(file: UploadedFile) -> bytes:
    file.seek(0)
    data = file.read()
    file.seek(0)
    if not isinstance(data, bytes):  # uploads are read in binary mode; anything else is a caller's mistake
        raise TypeError(f"expected the upload's bytes, got {type(data).__name__}")
    return data


def _is_heif(data: bytes) -> bool:
    # ISO base media file: a 'ftyp' box whose brand is one of HEIF's. Checked here rather than by extension,
    # so a JPEG named .heic is still treated as JPEG and a HEIC named .jpg still decodes.
    return data[4:8] == b"ftyp" and data[8:12] in {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1"}


def _validate_heif(data: bytes, *, name: str) -> ValidatedImage:
    try:
        import pillow_heif
    except ImportError as error:  # the optional plugin is not installed
        raise InvalidUpload("HEIC pictures are not accepted here; send JPEG or PNG.", file_name=name) from error
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        width, height = heif.size
        if width * height > settings.UPLOAD_MAX_PIXELS:
            raise ImageError(
                f"The picture is {width}x{height} pixels; the limit is {settings.UPLOAD_MAX_PIXELS // 1_000_000} "
                "megapixels."
            )
        # libheif applies the container's rotation itself; exif_transpose covers files that only carry EXIF.
        picture = ImageOps.exif_transpose(heif.to_pillow()).convert("RGB")
    except ImageError as error:
        raise InvalidUpload(str(error), file_name=name) from error
    except Exception as error:
        raise InvalidUpload("The picture is damaged or incomplete and cannot be read.", file_name=name) from error
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=HEIF_REENCODE_QUALITY)
    jpeg = buffer.getvalue()
    return ValidatedImage(
        original_name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(jpeg),
        width=picture.width,
        height=picture.height,
        extension=".jpg",
        content_type="image/jpeg",
        replacement_bytes=jpeg,
    )


@dataclass(frozen=True)
class _Header:
    format: str
    # As the owner sees it (EXIF orientations 5-8 turn a quarter).
    upright_size: tuple[int, int]


def _read_header(data: bytes) -> _Header | None:
    """Format and sizes from the header alone; ``None`` when even that fails (``open_image`` then says why)."""
    try:
        with open_quietly(data) as probe:
            width, height = probe.size
            turned = exif_orientation(probe) in (5, 6, 7, 8)  # a TIFF's size is reported turned already
            return _Header(
                format=probe.format or "",
                upright_size=(height, width) if turned else (width, height),
            )
    except Exception:  # hostile headers raise anything; the full decode that follows reports it properly
        return None

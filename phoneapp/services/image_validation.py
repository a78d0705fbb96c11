"""Checking an uploaded file before anything is stored: size, extension, and a full decode under a pixel limit."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image

from inference.images import ImageError, open_image
from phoneapp.services.errors import InvalidUpload, UploadTooLarge

ALLOWED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

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

THUMBNAIL_SIZE = (320, 320)


@dataclass(frozen=True)
class ValidatedImage:
    """Facts about an uploaded picture that passed every check, and its thumbnail."""

    original_name: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    extension: str
    content_type: str
    thumbnail_jpeg: bytes


def validate_image_file(file: UploadedFile) -> ValidatedImage:
    """Return what we need to store ``file``, or raise :class:`InvalidUpload` with a message for the user.

    The whole file is decoded (not just its header), so truncated pictures and decompression bombs are refused
    here rather than failing later in a worker. Stored bytes stay exactly as uploaded; the extension and the
    content type we serve come from the decoded format, never from the client.
    """
    name = PurePosixPath(file.name or "upload").name[:255]
    size = file.size or 0
    if size == 0:
        raise InvalidUpload("The file is empty.", file_name=name)
    if size > settings.UPLOAD_MAX_BYTES:
        limit_mb = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
        raise UploadTooLarge(f"The file is larger than the {limit_mb:g} MB limit.", file_name=name)
    extension = PurePosixPath(name).suffix.lower()
    if extension not in ALLOWED_EXTENSIONS:
        raise InvalidUpload(
            f"Files ending in {extension or '(no extension)'!r} are not accepted; send JPEG, PNG, WebP, GIF, BMP "
            "or TIFF pictures.",
            file_name=name,
        )
    data = _read_all(file)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format or ""
        picture = open_image(data, max_pixels=settings.UPLOAD_MAX_PIXELS)
    except ImageError as error:
        raise InvalidUpload(str(error), file_name=name) from error
    except Exception as error:
        raise InvalidUpload("The file is not a picture in a format we can read.", file_name=name) from error
    stored_extension, content_type = _FORMAT_TYPES[image_format]
    return ValidatedImage(
        original_name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        width=picture.width,
        height=picture.height,
        extension=stored_extension,
        content_type=content_type,
        thumbnail_jpeg=_thumbnail_jpeg(picture),
    )


def _read_all(file: UploadedFile) -> bytes:
    file.seek(0)
    data = file.read()
    file.seek(0)
    return data


def _thumbnail_jpeg(picture: Image.Image) -> bytes:
    thumbnail = picture.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumbnail.save(buffer, "JPEG", quality=82, optimize=True)
    return buffer.getvalue()

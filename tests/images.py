"""Pictures the tests draw themselves: no test depends on files outside the repository."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inference.drawing import draw_picture


def encode(image: Image.Image, image_format: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def picture_bytes(
    image_format: str = "JPEG", *, width: int = 320, height: int = 240, color: tuple[int, int, int] = (40, 120, 200)
) -> bytes:
    return encode(draw_picture(width=width, height=height, color=color), image_format)


def uploaded_file(
    name: str = "picture.jpg", data: bytes | None = None, content_type: str = "image/jpeg"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, picture_bytes() if data is None else data, content_type=content_type)

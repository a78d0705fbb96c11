"""Pictures the tests draw themselves: no test depends on files outside the repository."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw


def draw_picture(*, width: int = 320, height: int = 240, color: tuple[int, int, int] = (40, 120, 200)) -> Image.Image:
    """A picture with some structure (a rectangle and a circle), so it is not a flat colour."""
    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    draw.rectangle([width // 4, height // 4, width // 2, height * 3 // 4], fill=(230, 230, 230))
    draw.ellipse([width // 2, height // 3, width * 4 // 5, height * 2 // 3], fill=(20, 20, 20))
    return image


def encode(image: Image.Image, image_format: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def picture_bytes(image_format: str = "JPEG", **kwargs: object) -> bytes:
    return encode(draw_picture(**kwargs), image_format)  # type: ignore[arg-type]


def uploaded_file(
    name: str = "picture.jpg", data: bytes | None = None, content_type: str = "image/jpeg"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, picture_bytes() if data is None else data, content_type=content_type)

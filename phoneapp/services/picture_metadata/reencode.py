"""Re-encoding from the pixels: for TIFF always, and for a picture whose container cannot be walked."""

from __future__ import annotations

import io

from PIL import ImageOps

from inference.images import exif_orientation, open_quietly
from phoneapp.services.picture_metadata.shared import is_colour_profile


def reencoded(data: bytes, image_format: str) -> bytes:
    """Decode in full, turn upright, and save again without any metadata (lossless except for JPEG, from the
    pixels Pillow decodes: a TIFF of 16 bits a colour channel is stored at 8, as the model sees it)."""
    with open_quietly(data) as image:
        image.load()
        clean = ImageOps.exif_transpose(image) if exif_orientation(image) != 1 else image.copy()
        # The colour profile says what the pixel values mean (not who took the picture): kept, or wide-gamut
        # pictures would change colour; so does a palette's transparent entry.
        profile = image.info.get("icc_profile")
        colours = {"icc_profile": profile} if profile and is_colour_profile(profile) else {}
        transparency = image.info.get("transparency")
    clean.info = {} if transparency is None else {"transparency": transparency}
    buffer = io.BytesIO()
    if image_format in ("JPEG", "MPO"):
        clean.convert("RGB").save(buffer, "JPEG", quality=92, **colours)
    elif image_format == "GIF":
        clean.save(buffer, "GIF")
    elif image_format == "TIFF":
        clean.save(buffer, "TIFF", compression="tiff_adobe_deflate", **colours)
    elif image_format == "BMP":
        clean.save(buffer, "BMP")
    else:
        clean.save(
            buffer,
            "WEBP" if image_format == "WEBP" else "PNG",
            **({"lossless": True} if image_format == "WEBP" else {}),
            **colours,
        )
    return buffer.getvalue()

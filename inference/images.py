"""Decoding untrusted pictures safely, in one place.

Everything that opens a user's picture (the upload validator, the worker, the CLI, training) goes through
:func:`open_image`, so the pixel limit, EXIF orientation and colour conversion are applied the same way
everywhere.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# The most pixels decoded for one picture: a 20000x20000 "bomb" is refused before its pixels are allocated. A
# JPEG over it (48-, 50- and 108-megapixel phone cameras) is decoded at the largest of Pillow's reduced scales (1/2,
# 1/4, 1/8) that fits, which is more detail than any later step keeps. Pillow's own bomb check refuses anything
# over twice its ``MAX_IMAGE_PIXELS`` (about 179 megapixels) when the file is opened; its warning above half that
# is left to the tighter check here, which says the picture's size.
DEFAULT_MAX_PIXELS = 40_000_000
# Formats whose decoder can skip detail (Pillow's draft): only these may be decoded smaller than they are.
DRAFTABLE_FORMATS = frozenset({"JPEG", "MPO"})

# Formats a user may upload. Pillow would open many more (EPS, ICO, PSD, ...), each one extra attack surface.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})

ImageSource = str | os.PathLike[str] | bytes | BinaryIO

# EXIF's Orientation tag: how the stored pixels are turned or flipped for showing (1-8; 1 = as stored).
ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """The input is not a picture we accept; the message is safe to show to the person who sent it."""


class UnsupportedFormat(ImageError):
    """A picture Pillow reads, in a format this package does not take (``format``: Pillow's name, e.g. ``ICO``).

    Callers that take more formats than this package decodes (the web app converts HEIC) word their own list."""

    def __init__(self, image_format: str | None) -> None:
        super().__init__(f"Unsupported picture format {image_format!r}; use JPEG, PNG, WebP, GIF, BMP or TIFF.")
        self.format = image_format


def open_quietly(source: ImageSource) -> Image.Image:
    """``Image.open`` without Pillow's decompression-bomb *warning* (from ~89 megapixels; its error from ~179 stays).

    For pictures whose size is checked here (:func:`open_image`, before anything is decoded) or was checked at
    upload: the warning says nothing those checks do not decide, and was printed for every 108-megapixel photo.
    (``catch_warnings`` is not thread-safe: two threads opening at once can leave the filter list as the other
    found it. That only changes which warnings get printed, never what is refused.)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(_as_file(source))


def _as_file(source: ImageSource) -> BinaryIO | str | os.PathLike[str]:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    return source


def open_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode a picture fully and return it as an upright RGB image.

    Raises :class:`ImageError` for anything that is not a whole picture in an accepted format, including
    truncated files and pictures over ``max_pixels`` (decompression bombs); a path that cannot be opened raises
    its :class:`OSError`. ``draft_size`` lets JPEG decoding
    skip detail that a later downscale would throw away (Pillow's ``draft``), which makes it several times
    faster for big photos.
    """
    file = _as_file(source)
    if isinstance(file, (str, os.PathLike)):
        # Opened here, so a missing file, a directory or a file without read permission raises its own OSError
        # (the CLI prints its reason) instead of being reported as a damaged picture.
        with open(file, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                raise ImageError("The file is empty.")
            return open_image(handle, max_pixels=max_pixels, draft_size=draft_size)
    try:
        # Pillow refuses over ~179 megapixels here; the checks below, anything over the limit.
        image = open_quietly(file)
        if image.format not in ACCEPTED_FORMATS:
            raise UnsupportedFormat(image.format)
        width, height = image.size
        if image.format in DRAFTABLE_FORMATS:
            requested = _draft_request(image.size, draft_size, max_pixels)
            if requested is not None:
                image.draft("RGB", requested)
        if image.size[0] * image.size[1] > max_pixels:
            raise ImageError(
                f"The picture is {width}x{height} pixels; the limit is {max_pixels // 1_000_000} megapixels."
            )
        # Truncated files must fail here, not later in a worker, so load with truncation disallowed.
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            image.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        hard_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) // 1_000_000
        raise ImageError(
            f"The picture has more than {hard_limit} megapixels, more than any picture can be opened with here."
        ) from error
    except UnidentifiedImageError as error:
        raise ImageError("The file is not a picture in a format we can read.") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError("The picture is damaged or incomplete and cannot be read.") from error
    # In place: without it Pillow returns a full copy of every picture that needs no rotation (most of them).
    if exif_orientation(image) != 1:
        ImageOps.exif_transpose(image, in_place=True)
    return _to_rgb(image)


def exif_orientation(image: Image.Image) -> int:
    """The turn still to apply to what Pillow gives of ``image``: the orientation its own EXIF block gives, 1 when
    it gives none.

    Pillow's ``getexif()`` also takes XMP's ``tiff:Orientation`` when EXIF has no orientation; browsers ignore
    XMP and stored copies drop it, so this project turns pictures by EXIF alone, everywhere: the size recorded at
    upload, the pixels the model sees and the picture the pages show then agree. Pillow turns a TIFF itself (its
    size is reported turned from the start, its pixels turned as they load): 1.
    """
    if image.format == "TIFF":
        return 1
    if image.format == "PNG":
        image.getexif()  # a PNG's EXIF block may follow its pixels: this reads it into ``info`` either way
    raw = image.info.get("exif")  # JPEG and WebP read theirs when opened
    if not raw:
        return 1
    own = Image.Exif()
    try:
        own.load(raw)
        orientation = own.get(ORIENTATION_TAG, 1)
    except Exception:  # an unreadable EXIF block turns nothing
        return 1
    return orientation if orientation in range(1, 9) else 1


def _draft_request(
    size: tuple[int, int], draft_size: tuple[int, int] | None, max_pixels: int
) -> tuple[int, int] | None:
    """The size to ask a JPEG's draft for: the caller's ``draft_size``, shrunk further to the largest reduced scale
    that fits ``max_pixels`` when the picture is over it (None: decode at full size)."""
    width, height = size
    requested = draft_size
    if width * height > max_pixels:
        # Asked for w // scale, Pillow reduces by exactly ``scale`` (it divides the side by the size asked for; an
        # odd side asked for ceil(w / 2) came out unreduced), and decodes ceil(w / scale) pixels: that must fit.
        fitting = next(
            (
                (width // scale, height // scale)
                for scale in (2, 4, 8)
                if math.ceil(width / scale) * math.ceil(height / scale) <= max_pixels
            ),
            None,
        )
        if fitting is None:
            return draft_size  # too big even at 1/8: refused by the caller's check
        requested = fitting if draft_size is None else (min(draft_size[0], fitting[0]), min(draft_size[1], fitting[1]))
    return requested


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white, as the training pictures were, and return RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _grey_to_8_bits(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _grey_to_8_bits(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or floating-point grey picture as 8-bit grey ("L").

    Pillow's own conversion clips every value above 255, so a 16-bit PNG or TIFF came out solid white (and was
    judged on a blank picture). Integers are scaled from their bit depth (16 bits unless larger values occur);
    floats from 0-1 when they lie there, else from their own range.
    """
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = (0.0, 1.0) if values.size and values.min() >= 0 and values.max() <= 1 else _range(values)
    else:
        top = float(values.max()) if values.size else 0.0
        low, high = 0.0, 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)

"""Thumbnails for the history page, drawn by the worker from the picture it decodes for the model anyway.

They used to be drawn in the web process at upload, which then decoded every picture at thumbnail scale and
encoded a JPEG: ~4 ms of the web process's ~18 ms CPU per upload (docs/performance.md), spent while the client
waited. The worker already holds the decoded, upright picture, so the thumbnail costs it only a resize and an
encode, and it is written with the verdict. Until then (a pending upload) the thumbnail URL serves the picture
itself (:func:`phoneapp.picture_files.thumbnail_response`).
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image

from inference.images import open_image
from phoneapp.models import Upload
from phoneapp.services.errors import StorageUnavailable
from phoneapp.services.stored_files import stored_files_discard
from phoneapp.services.stored_pictures import stored_file_write

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (320, 320)
# The longest side of the JPEG the pages get for a picture browsers cannot draw (upload_display_jpeg): a 4K screen's.
DISPLAY_MAX_SIDE = 3840
# The last few renditions drawn, per process: a 40-megapixel TIFF costs ~0.7 s of CPU to draw, and a page opened
# again (or a reload loop) should not pay it each time. A few MB each; only served after the page's access check.
DISPLAY_CACHE_PICTURES = 4
_display_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_display_cache_lock = threading.Lock()
# What browsers draw; a pending upload's picture in any other stored format (TIFF) gets a thumbnail drawn on request.
BROWSER_DRAWABLE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"})


def thumbnail_jpeg(picture: Image.Image) -> bytes:
    """A JPEG of at most 320x320 of an upright RGB picture.

    Box filter (area averaging, what ``Image.reduce`` uses) and no Huffman optimisation: at this size neither
    bilinear, bicubic, Lanczos nor ``optimize`` is visible, and each costs the worker more for every upload
    (a 512-pixel picture: box 0.63 ms, bilinear 0.84, bicubic ~1.4; docs/experiments.md, "Performance runs", Run M).
    """
    thumbnail = picture.resize(_thumbnail_size(picture.size), Image.Resampling.BOX)
    buffer = io.BytesIO()
    thumbnail.save(buffer, "JPEG", quality=82)
    return buffer.getvalue()


def _thumbnail_size(size: tuple[int, int]) -> tuple[int, int]:
    """The picture's size scaled to fit :data:`THUMBNAIL_SIZE`, aspect kept, never enlarged (what
    ``Image.thumbnail`` computes; resizing straight to it spares the copy ``thumbnail`` needs, which works in place)."""
    width, height = size
    scale = min(THUMBNAIL_SIZE[0] / width, THUMBNAIL_SIZE[1] / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def upload_thumbnail_store(*, upload: Upload, picture: Image.Image) -> str | None:
    """Write the thumbnail file of ``upload`` from its decoded ``picture`` and point the (unsaved) field at it.

    Returns the stored name for the caller to save with its own row update, or ``None`` when the upload already
    has one (a duplicate sharing its twin's) or storage refused the write (logged: a missing thumbnail must not
    cost a verdict; the picture is shown in its place).
    """
    if upload.thumbnail:
        return None
    try:
        return stored_file_write(
            field_file=upload.thumbnail, filename="thumbnail.jpg", content=ContentFile(thumbnail_jpeg(picture))
        )
    except StorageUnavailable:
        logger.warning("thumbnail not stored", extra={"upload_id": upload.pk})
        return None


def upload_thumbnail_redraw(*, upload: Upload) -> bytes:
    """Draw the thumbnail of an upload whose thumbnail file was lost from storage (a restore without it, a lost
    volume), store it and point every row that named the lost file at it; returns its bytes.

    Without it the pages fell back to the whole picture, a few MB per history card for good. The picture is
    decoded at thumbnail scale (a JPEG's draft), once: later requests get the stored file. Two requests at once
    may both draw; the first to point the rows at its file wins and the other's file is removed. A storage that
    refuses the write still gets this request its thumbnail (not stored; the next request tries again).
    Raises :class:`inference.images.ImageError` or :class:`OSError` when the picture itself cannot be read.
    """
    lost = upload.thumbnail.name
    with upload.image.open("rb") as handle:
        drawn = thumbnail_jpeg(open_image(handle, max_pixels=settings.UPLOAD_MAX_PIXELS, draft_size=THUMBNAIL_SIZE))
    try:
        name = stored_file_write(field_file=upload.thumbnail, filename="thumbnail.jpg", content=ContentFile(drawn))
    except StorageUnavailable:
        logger.warning("lost thumbnail redrawn but not stored", extra={"upload_id": upload.pk})
        return drawn
    if Upload.objects.filter(thumbnail=lost).update(thumbnail=name):
        logger.info("lost thumbnail redrawn", extra={"upload_id": upload.pk})
    else:
        thumbnail_discard(name)
    return drawn


def thumbnail_discard(name: str) -> None:
    """Remove a thumbnail file no row names (its verdict lost a race with another run's, or its upload was deleted
    while the worker drew it); tried again later if the storage refuses now."""
    stored_files_discard(names=[name])


def upload_preview_jpeg(*, upload: Upload) -> bytes | None:
    """A thumbnail drawn now for a picture browsers cannot draw whose worker-drawn thumbnail does not exist yet.

    ``None`` when the picture itself can stand in for it (browser-drawable formats, the usual case: no work here).
    Only pending TIFFs come here: the upload page would otherwise show a broken image until the verdict. Not stored:
    the worker writes the real one with the verdict.
    """
    picture = _undrawable_decoded(upload)
    return None if picture is None else thumbnail_jpeg(picture)


def upload_display_jpeg(*, upload: Upload) -> bytes | None:
    """The whole picture as a JPEG, for pictures browsers cannot draw (TIFF): the pages' detail, review and admin
    views showed a broken image for them. ``None`` for the browser-drawable formats, served as stored.

    Drawn on request, at most :data:`DISPLAY_MAX_SIDE` pixels on its long side, and kept for the next requests in a
    small per-process cache (:data:`DISPLAY_CACHE_PICTURES`): TIFF uploads are rare, and drawing a 40-megapixel one
    costs ~0.7 s, which repeated requests must not make anyone pay again and again."""
    if upload.content_type in BROWSER_DRAWABLE_TYPES:
        return None
    key = (upload.image.name, upload.sha256)
    with _display_cache_lock:
        if key in _display_cache:
            _display_cache.move_to_end(key)
            return _display_cache[key]
    picture = _undrawable_decoded(upload)
    if picture is None:
        return None
    picture.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE), Image.Resampling.BOX)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    drawn = buffer.getvalue()
    with _display_cache_lock:
        _display_cache[key] = drawn
        while len(_display_cache) > DISPLAY_CACHE_PICTURES:
            _display_cache.popitem(last=False)
    return drawn


def _undrawable_decoded(upload: Upload) -> Image.Image | None:
    """The stored picture decoded upright in RGB when browsers cannot draw its format (TIFF), else None: the one
    decoding behind both the pending thumbnail and the pages' rendition. It is the model's (``open_image``), so
    16-bit and float greys are scaled rather than clipped to white (the thumbnail's own ``convert`` clipped them)."""
    if upload.content_type in BROWSER_DRAWABLE_TYPES:
        return None
    with upload.image.open("rb") as handle:
        return open_image(handle, max_pixels=settings.UPLOAD_MAX_PIXELS)

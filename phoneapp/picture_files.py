"""Serving a stored picture's bytes, the same way for pages and the API (both edges import it; neither imports
the other)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import TypeVar

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404

from inference.images import ImageError
from phoneapp.models import Upload
from phoneapp.services.errors import ServiceUnavailable
from phoneapp.services.heatmaps import upload_heatmap_draw_on_request
from phoneapp.services.thumbnails import upload_display_jpeg, upload_preview_jpeg, upload_thumbnail_redraw

Drawn = TypeVar("Drawn", bytes, bytes | None)


def picture_response(field: FieldFile, content_type: str, *, filename: str = "") -> FileResponse:
    """The bytes of a stored picture with headers that keep a browser from running them (pages and API).
    ``filename``: what a saved copy is called (``Content-Disposition``), else the stored file's own name."""
    if not field.name:
        raise Http404("No picture.")
    with _storage_read():
        handle = field.open("rb")
    return _protected(FileResponse(handle, content_type=content_type, filename=filename))


@contextmanager
def _storage_read() -> Iterator[None]:
    """A file gone from storage answers 404; unreadable storage (permissions, an unmounted volume) a 503, not a
    500 page."""
    try:
        yield
    except FileNotFoundError as error:
        raise Http404("The picture file is missing.") from error
    except OSError as error:
        raise ServiceUnavailable("The picture cannot be read from storage right now. Try again shortly.") from error


def upload_image_response(upload: Upload) -> FileResponse:
    """The stored picture (the API's ``image``, a download), saved under the name it was sent with."""
    return picture_response(upload.image, upload.content_type, filename=_sent_name(upload, upload.image.name))


def display_response(upload: Upload) -> FileResponse:
    """The picture as the pages show it: as stored when browsers draw its format, else a JPEG drawn now (TIFF).
    The API's ``image`` serves the stored file whatever its format (a download, not a display)."""
    drawn_now = _drawn_from_stored(upload_display_jpeg, upload)
    if drawn_now is not None:
        shown = FileResponse(io.BytesIO(drawn_now), content_type="image/jpeg", filename=_sent_name(upload, "shown.jpg"))
        return _protected(shown)
    return upload_image_response(upload)


def _sent_name(upload: Upload, stored_as: str, *, rendition: str = "") -> str:
    """The name the picture was sent with, ending as what is served ends (a HEIC sent as IMG_1.heic is a JPEG);
    a rendition's name says which it is (``IMG_1-thumbnail.jpg``), where the stored file's own was random hex."""
    stem = PurePosixPath(upload.original_name or "picture").stem
    return (
        f"{stem}-{rendition}{PurePosixPath(stored_as).suffix}" if rendition else stem + PurePosixPath(stored_as).suffix
    )


def thumbnail_response(upload: Upload) -> FileResponse:
    """The upload's thumbnail; until the worker has drawn it (:mod:`phoneapp.services.thumbnails`), the picture
    itself (answers to logged-in users are never cached, so the thumbnail replaces it as soon as it exists), or for
    a picture browsers cannot draw (TIFF) a thumbnail drawn now."""
    jpeg_name = _sent_name(upload, "thumbnail.jpg", rendition="thumbnail")
    if upload.thumbnail:
        try:
            return picture_response(upload.thumbnail, "image/jpeg", filename=jpeg_name)
        except Http404:  # lost from storage (a restore without it): drawn again from the picture, and stored
            redrawn = _drawn_from_stored(upload_thumbnail_redraw, upload)
            return _protected(FileResponse(io.BytesIO(redrawn), content_type="image/jpeg", filename=jpeg_name))
    drawn_now = _drawn_from_stored(upload_preview_jpeg, upload)
    if drawn_now is not None:
        return _protected(FileResponse(io.BytesIO(drawn_now), content_type="image/jpeg", filename=jpeg_name))
    return picture_response(
        upload.image, upload.content_type, filename=_sent_name(upload, upload.image.name, rendition="thumbnail")
    )


def _drawn_from_stored(draw: Callable[..., Drawn], upload: Upload) -> Drawn:
    """What ``draw`` draws from the stored picture (a rendition, a thumbnail), its storage errors answered like
    every stored picture's: the picture gone or no longer readable as a picture 404, storage unreadable 503."""
    with _storage_read():
        try:
            return draw(upload=upload)
        except ImageError as error:
            raise Http404("The picture file is missing or damaged.") from error


def heatmap_response(upload: Upload) -> FileResponse:
    """The upload's "where is the phone" overlay (transparent PNG), drawn now and stored if its verdict's evidence
    was kept and nobody asked for it before (:func:`phoneapp.services.heatmaps.upload_heatmap_draw_on_request`).
    A 404 says there is none to draw ("No picture." read as if the picture itself were gone)."""
    drawn = upload_heatmap_draw_on_request(upload=upload)
    if not drawn.heatmap.name:
        raise Http404("No heat map for this upload: it has no verdict yet, or its model's files are not here.")
    return picture_response(drawn.heatmap, "image/png", filename=_sent_name(upload, "heatmap.png", rendition="heatmap"))


def _protected(response: FileResponse) -> FileResponse:
    # The bytes are the user's own; never let a browser sniff them into HTML or script.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # Served only to a signed-in owner or staff member: never kept by a browser or proxy (the security-headers
    # middleware says the same of every signed-in answer; a picture says it itself too).
    response["Cache-Control"] = "private, no-store"
    return response

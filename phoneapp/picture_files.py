"""Serving a stored picture's bytes, the same way for pages and the API (both edges import it; neither imports
the other)."""

from __future__ import annotations

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404


def picture_response(field: FieldFile, content_type: str) -> FileResponse:
    """The bytes of a stored picture with headers that keep a browser from running them (pages and API)."""
    if not field.name:
        raise Http404("No picture.")
    try:
        handle = field.open("rb")
    except FileNotFoundError as error:
        raise Http404("The picture file is missing.") from error
    response = FileResponse(handle, content_type=content_type)
    # The bytes are the user's own; never let a browser sniff them into HTML or script.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response

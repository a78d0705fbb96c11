"""Refuse an oversized request body before anything reads it.

Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not count file parts: each file streams to a temporary file, and the
per-file limit (``UPLOAD_MAX_BYTES``) is only checked by the upload service, after the whole body is on disk. And
the body is read before any view runs, even for a visitor who is not logged in (the CSRF check reads the form's
token). So the body's declared length is checked first, against what the largest acceptable upload can need:
``UPLOAD_MAX_FILES`` pictures of ``UPLOAD_MAX_BYTES`` each, plus room for the form's own fields
(``REQUEST_MAX_BYTES``). A body without a declared length is never read by Django, so this bound holds for every
request; a proxy limit in front (docs/reliability.md) is still worth having.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from phoneapp.request_edges import is_api_request


def request_too_large_message() -> str:
    """What the person or client is told, in the units they chose files by."""
    limit_mb = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
    return (
        f"The request is too large: send at most {settings.UPLOAD_MAX_FILES} pictures of up to {limit_mb:g} MB each "
        "per upload."
    )


def declared_length(request: HttpRequest) -> int:
    """The body length the client declared (0 when absent or unreadable: Django then reads no body)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class RequestSizeLimitMiddleware:
    """413 for a body longer than ``REQUEST_MAX_BYTES``: JSON ``{"error": ...}`` under ``/api/``, text otherwise."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if declared_length(request) <= settings.REQUEST_MAX_BYTES:
            return self.get_response(request)
        message = request_too_large_message()
        if is_api_request(request):
            response: HttpResponse = JsonResponse({"error": message}, status=413)
        else:
            response = HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        # No "Connection: close": a WSGI application may not send hop-by-hop headers (Django's development server
        # turned this 413 into a 500 for it). The server reads and discards the unread body itself before another
        # request on the connection (gunicorn and the development server both do): the body is never parsed or
        # stored, but it is received; a proxy limit in front (nginx client_max_body_size) spares even that.
        return response

"""Refuse an oversized request body before anything reads it.

Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not count file parts: each file streams to a temporary file, and the
per-file limit (``UPLOAD_MAX_BYTES``) is only checked by the upload service, after the whole body is on disk. And
the body is read before any view runs, even for a visitor who is not logged in (the CSRF check reads the form's
token). So the body's declared length is checked first. Only a signed-in person sending pictures (the upload form
``POST /``, or ``POST /api/uploads/``, whose token DRF checks before it reads the body) may send what the largest
acceptable upload can need: ``UPLOAD_MAX_FILES`` pictures of ``UPLOAD_MAX_BYTES`` each, plus room for the form's
own fields (``REQUEST_MAX_BYTES``); every other request, and pictures sent to the form by someone not signed in,
at most ``FORM_MAX_BYTES`` (the API reads no body before DRF knows the caller, so its limit holds for everyone). A
body without a declared length is never read by Django, so these bounds hold for every request; a proxy limit in
front (docs/reliability.md) is still worth having.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from phoneapp.request_edges import is_api_request
from phoneapp.web.outages import outage_response


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


def _picture_paths() -> tuple[str, str]:
    return reverse("upload"), reverse("api-uploads")


class RequestSizeLimitMiddleware:
    """413 for a body longer than its limit (see the module): JSON ``{"error": ...}`` under ``/api/``, text
    otherwise. Pictures sent to the upload form by someone not signed in are sent to sign in, as the view would,
    without the body being read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = declared_length(request)
        if length <= min(settings.FORM_MAX_BYTES, settings.REQUEST_MAX_BYTES):
            return self.get_response(request)  # within every limit: most requests, without looking at the address
        # request.path, like reverse(), includes the prefix the site is mounted under (path_info does not).
        if request.path in _picture_paths():
            if length > settings.REQUEST_MAX_BYTES:
                message = request_too_large_message()
            elif length <= settings.FORM_MAX_BYTES or is_api_request(request):
                # The API: DRF checks the token, or answers 401, before it reads the body.
                return self.get_response(request)
            else:
                try:
                    signed_in = request.user.is_authenticated
                except DatabaseError as error:
                    # Who it is cannot be told: the body stays unread (a visitor's 300 MB would be parsed).
                    return outage_response(request, error)
                return self.get_response(request) if signed_in else redirect_to_login(request.get_full_path())
        elif length <= settings.FORM_MAX_BYTES:
            return self.get_response(request)
        else:
            message = (
                f"The request is too large: this address takes at most {settings.FORM_MAX_BYTES / 1024**2:.3g} MB."
            )
        if is_api_request(request):
            response: HttpResponse = JsonResponse({"error": message}, status=413)
        else:
            response = HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        # No "Connection: close": a WSGI application may not send hop-by-hop headers (Django's development server
        # turned this 413 into a 500 for it). The server reads and discards the unread body itself before another
        # request on the connection (gunicorn and the development server both do): the body is never parsed or
        # stored, but it is received; a proxy limit in front (nginx client_max_body_size) spares even that.
        return response

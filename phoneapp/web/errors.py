"""Answers for requests Django refuses before any view runs (too many files, oversized form fields)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler400``: a readable reason (JSON under ``/api/``), never Django's bare "Bad Request" page."""
    status = 400
    if isinstance(exception, TooManyFilesSent):
        message = f"Too many files: at most {settings.UPLOAD_MAX_FILES} per upload."
    elif isinstance(exception, RequestDataTooBig):
        status = 413
        message = "The form data is too large; send pictures as files in the 'image' field."
    elif isinstance(exception, TooManyFieldsSent):
        message = "Too many form fields."
    else:
        message = "The request could not be understood."
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")

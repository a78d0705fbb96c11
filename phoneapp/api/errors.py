"""The one place that maps domain errors to HTTP responses for the API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from phoneapp.errors import NotFound
from phoneapp.refused_requests import refused_request
from phoneapp.services.errors import RETRY_AFTER_SECONDS, DomainError, InvalidUpload


def exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    """Domain errors become ``{"error": message}`` with their status, a selector's :class:`NotFound` a 404, a body
    Django refused to read (too many files) its 400 or 413; the rest is DRF's usual handling."""
    if isinstance(error, NotFound):
        return Response({"error": error.message}, status=404)
    refused = refused_request(error)
    if refused is not None:
        status, message = refused
        return Response({"error": message}, status=status)
    if isinstance(error, DomainError):
        body: dict[str, Any] = {"error": error.message}
        if isinstance(error, InvalidUpload) and error.refused:
            body["files"] = [asdict(refused) for refused in error.refused]
        response = Response(body, status=error.status_code)
        if error.status_code == 503:
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    handled = drf_exception_handler(error, context)
    if handled is not None and isinstance(handled.data, dict) and "detail" in handled.data:
        handled.data = {"error": str(handled.data["detail"])}
        if isinstance(error, NotAuthenticated):
            handled.data["error"] += _scheme_hint(context.get("request"))
    return handled


def _scheme_hint(request: Request | None) -> str:
    """For a key sent under another scheme (``Bearer``, ``Basic``), which token authentication passes over (so a
    page behind a proxy's basic authentication still works with its session): the header to use instead."""
    scheme = get_authorization_header(request).split(b" ", 1)[0].decode("latin-1") if request is not None else ""
    if not scheme or scheme.lower() == "token":
        return ""
    return f" The Authorization header's scheme '{scheme}' is not accepted: send 'Authorization: Token <key>'."

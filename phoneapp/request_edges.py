"""Whether a request is the JSON API's: the one test every layer that words an answer uses (pages answer HTML or
text, the API ``{"error": ...}``), below both edges so neither imports the other."""

from __future__ import annotations

from django.http import HttpRequest

API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    """Under ``/api/``, or ``/api`` itself (a script's base address without its slash got Django's HTML 404),
    wherever the site is mounted (``path_info`` leaves out a ``SCRIPT_NAME`` prefix)."""
    return request.path_info.startswith(API_PREFIX) or request.path_info == API_PREFIX.rstrip("/")

"""``login_throttled``: put in front of any view that takes a user name and password (a reusable decorator).

Used on ``/accounts/login/``, ``/admin/login/`` and ``POST /api/token/``. Past the limit the view is
not called at all: 429 with ``Retry-After`` (JSON ``{"error": ...}`` under ``/api/``, the login page with the
reason otherwise), and no password is hashed -- guessers cannot slow everybody else down with hashing work.
The backend (phoneapp/auth_backends.py) enforces the same limit on any door this decorator is not on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render

from phoneapp.auth_backends import client_address
from phoneapp.client_json import client_json_loads
from phoneapp.refused_requests import refused_request
from phoneapp.request_edges import is_api_request
from phoneapp.services.login_attempts import login_attempt_wait


def login_throttled(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Answer 429 instead of calling ``view`` for a POST whose account or address is past the login limit."""

    @wraps(view)
    def throttled_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            try:
                username = _posted_username(request)
            except (SuspiciousOperation, BadRequest) as error:
                refused = refused_request(error)
                if refused is None or not is_api_request(request):
                    raise  # the pages' handler400 words it
                # Read here, outside the API's exception handler: answered in the API's JSON even in DEBUG.
                return JsonResponse({"error": refused[1]}, status=refused[0])
            wait = login_attempt_wait(username=username, address=client_address(request))
            if wait is not None:
                return login_refused_response(request, retry_after=wait)
        return view(request, *args, **kwargs)

    return throttled_view


def login_refused_response(request: HttpRequest, *, retry_after: int) -> HttpResponse:
    message = f"Too many failed logins; try again in {retry_after} seconds."
    if is_api_request(request):
        response: HttpResponse = JsonResponse({"error": message}, status=429)
    else:
        messages.error(request, message)
        response = render(request, "registration/login.html", {"form": AuthenticationForm(request)}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _posted_username(request: HttpRequest) -> str | None:
    field = get_user_model().USERNAME_FIELD
    if request.content_type == "application/json":
        try:
            body = client_json_loads(request.body or b"{}")
        except ValueError:
            return None
        value = body.get(field) if isinstance(body, dict) else None
        return value if isinstance(value, str) else None
    return request.POST.get(field) or request.POST.get("username")

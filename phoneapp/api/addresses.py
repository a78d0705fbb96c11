"""Addresses under ``/api/`` that no endpoint answers: a JSON 404 naming the address meant, never a redirect.

Django's ``CommonMiddleware`` answers a path without its final slash with a 301 to the path with it
(``APPEND_SLASH``). For a POST it cannot keep the body (in ``DEBUG`` it raises instead: a 500), and clients that
follow the 301 re-send a POST as a GET, so a script posting to ``/api/uploads`` would silently get the list of its
uploads back. And Django's 404 page (HTML; in ``DEBUG`` the technical page) is not what a script parses. So under
``/api/`` the slash is never appended, and a 404 no API view answered becomes ``{"error": ...}``, naming the address
meant when only the final slash differs. Pages keep Django's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware
from django.urls import Resolver404, resolve

from phoneapp.request_edges import API_PREFIX, is_api_request


def not_found_message(request: HttpRequest) -> str:
    """What a client is told about an address no endpoint answers: the one meant if only the final slash differs,
    else where the addresses are listed."""
    path, script = request.path_info, request.path.removesuffix(request.path_info)
    other = path[:-1] if path.endswith("/") else f"{path}/"
    try:
        resolve(other)
    except Resolver404:
        return f"No such address: {request.path}. The API's addresses are listed at {script}{API_PREFIX}docs/."
    return f"No such address: {request.path}. Did you mean {script}{other}?"


class ApiCommonMiddleware(CommonMiddleware):
    """Django's ``CommonMiddleware``, except that paths under ``/api/`` are never redirected to add a slash."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        return not is_api_request(request) and super().should_redirect_with_slash(request)


class ApiNotFoundMiddleware:
    """Turns the 404 of an address under ``/api/`` that no route matched into JSON naming the address meant."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # An address an endpoint answered keeps that endpoint's 404 ("No such upload.", in JSON or, for a browser,
        # on the browsable API's page); only an address no route matched is rewritten.
        unmatched = getattr(request, "resolver_match", None) is None
        if response.status_code == 404 and unmatched and is_api_request(request):
            return JsonResponse({"error": not_found_message(request)}, status=404)
        return response

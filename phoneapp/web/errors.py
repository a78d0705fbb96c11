"""Answers for requests Django refuses before any view runs (too many files, oversized form fields), the 404 for a
selector's :class:`~phoneapp.errors.NotFound`, and the 405 page of a page address opened with the wrong method."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.defaults import page_not_found

from phoneapp.errors import NotFound
from phoneapp.refused_requests import refused_request
from phoneapp.request_edges import is_api_request


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler400``: a readable reason (JSON under ``/api/``), never Django's bare "Bad Request" page. A form
    Django refused to read (too many files) gets a page with the way back; anything else (a host not allowed) plain
    words, as nothing about the request can be trusted to draw a page with."""
    refused = refused_request(exception)
    status, message = refused or (400, "The request could not be understood.")
    if is_api_request(request):
        return JsonResponse({"error": message}, status=status)
    if refused is not None:
        return render(request, "400.html", {"status": status, "message": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RefusedFormMiddleware:
    """Reads a page's form just before the CSRF check would, so that a form Django refuses to read (more files
    than ``UPLOAD_MAX_FILES``: the no-script upload form takes any number) is answered by :func:`bad_request`'s
    page under ``DEBUG`` too, where Django showed its debug page instead (the quick start runs with ``DEBUG``).
    Listed just before ``CsrfViewMiddleware``.

    It reads only what that check reads next anyway: a form posted with the CSRF cookie (without one the check
    refuses it unread, and so nothing here parses a stranger's body); the API answers its own refusals. A body
    that cannot be read (the client went away) is left to the CSRF check, which answers it as it always did."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, *args: object) -> HttpResponse | None:
        if request.method != "POST" or is_api_request(request) or settings.CSRF_COOKIE_NAME not in request.COOKIES:
            return None
        try:
            request.POST  # noqa: B018 (read for its exceptions; Django keeps what it read for the views)
        except UnreadablePostError:
            return None
        except (SuspiciousOperation, BadRequest) as error:
            if refused_request(error) is None:
                raise
            return bad_request(request, error)
        return None


class NotFoundMiddleware:
    """A selector's :class:`NotFound` or an ``Http404`` raised by a page view is answered with the site's 404 page
    (``404.html``, what ``handler404`` renders), so selectors stay free of HTTP. Under ``DEBUG`` too, as the quick
    start runs: a picture opened after it was deleted showed Django's unstyled debug page listing the URL patterns,
    a dead end. API views map them themselves (``phoneapp/api/errors.py``, DRF); an address that matches no URL
    still gets Django's debug page under ``DEBUG``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, NotFound):
            exception = Http404(exception.message)
        if not isinstance(exception, Http404):
            return None
        return page_not_found(request, exception)


class MethodNotAllowedPageMiddleware:
    """A page address opened with the wrong method (a bookmarked sign-out or retry link: they take a POST) answers
    its 405 with a page saying what to do, and a sign-out button on the sign-out address; Django's 405 has no body,
    which browsers show as "This page isn't working". The API's 405s are DRF's JSON and pass through."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Only a link followed to an address that takes a button: a form sent to a page that is only read (POST
        # /history/), a probe (/healthz) or the API keep their plain 405.
        followed_link = request.method in ("GET", "HEAD") and "POST" in response.get("Allow", "")
        if response.status_code != 405 or not followed_link or response.content or is_api_request(request):
            return response
        signing_out = request.path == reverse("logout")
        if signing_out and not request.user.is_authenticated:
            return redirect("login")
        page = render(request, "405.html", {"signing_out": signing_out}, status=405)
        page["Allow"] = response["Allow"]
        return page

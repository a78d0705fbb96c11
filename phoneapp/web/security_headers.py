"""Headers every response gets: a Content-Security-Policy on pages, and no caching of anything personal."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


class SecurityHeadersMiddleware:
    """``Content-Security-Policy`` (``CONTENT_SECURITY_POLICY``) on every HTML response that has none of its own
    (pictures carry a stricter one), and ``Cache-Control: private, no-store`` on every response to a logged-in
    user: pages, API answers and pictures must not stay in a shared computer's browser cache after logout.

    The pages use no inline script or style (``style=`` attributes included), so the policy needs no
    ``'unsafe-inline'``; ``tests/test_security_headers.py`` checks every template for them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html") and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
        if _is_authenticated(request):
            response["Cache-Control"] = "private, no-store"
        return response


def _is_authenticated(request: HttpRequest) -> bool:
    # DRF copies a token-authenticated user onto the Django request, so API answers are covered too.
    user = getattr(request, "user", None)
    try:
        return bool(user is not None and user.is_authenticated)
    except Exception:  # the session store is down: the request already failed; treat it as personal
        logger.debug("could not tell whether the request was authenticated", exc_info=True)
        return True

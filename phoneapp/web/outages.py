"""Outages answer like outages: 503 with ``Retry-After`` when the database, the broker or storage fails mid-request.

An API client gets ``{"error": ...}`` JSON, a person the app's ``503.html`` page (plain text until a template
exists). Nothing half-written stays behind: the upload service rolls back rows and removes files itself
(phoneapp/services/uploads.py); this module only chooses the answer. Anything else is a 500, in JSON under
``/api/`` too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import TemplateDoesNotExist, loader
from django.views import defaults

from phoneapp.request_edges import is_api_request
from phoneapp.services.errors import RETRY_AFTER_SECONDS, ServiceUnavailable

logger = logging.getLogger(__name__)

OUTAGE_MESSAGE = "The service is briefly unavailable; nothing was saved. Try again in a moment."
# A request that only reads saved nothing anyway: telling a script so suggests something was lost.
OUTAGE_MESSAGE_ON_READ = "The service is briefly unavailable. Try again in a moment."


def _outage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OperationalError, InterfaceError, ServiceUnavailable]
    try:  # the broker (kombu) and the Redis cache, when they are in use
        from kombu.exceptions import OperationalError as BrokerError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        errors += [BrokerError, RedisConnectionError, RedisTimeoutError]
    except ImportError:
        pass
    return tuple(errors)


OUTAGE_ERRORS = _outage_errors()


def is_outage(error: BaseException | None) -> bool:
    return isinstance(error, OUTAGE_ERRORS)


def outage_response(request: HttpRequest, error: BaseException | None = None) -> HttpResponse:
    """503 + ``Retry-After``: JSON under ``/api/``, the ``503.html`` page (or plain text) otherwise."""
    reading = request.method in ("GET", "HEAD")
    if isinstance(error, ServiceUnavailable):
        message = error.message
    else:
        message = OUTAGE_MESSAGE_ON_READ if reading else OUTAGE_MESSAGE
    if is_api_request(request):
        response: HttpResponse = JsonResponse({"error": message}, status=503)
    else:
        try:
            context = {
                "retry_after": RETRY_AFTER_SECONDS,
                # A page that was only being read saved nothing anyway; a form that was sent must say so.
                "saved_nothing": not reading,
            }
            body = loader.get_template("503.html").render(context)
            response = HttpResponse(body, status=503)
        except TemplateDoesNotExist:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        except Exception:  # the page itself needs a service that is down (e.g. the session): plain text
            logger.exception("503 page could not be rendered")
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class OutageMiddleware:
    """Turns an outage raised by a view (API views included: DRF re-raises what it does not handle) into a 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_outage(exception):
            return None
        logger.error("request failed: service unavailable", exc_info=exception, extra={"path": request.path})
        return outage_response(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: outages raised outside views (e.g. saving the session) are 503s too; the rest is a 500,
    in JSON under ``/api/``."""
    error = sys.exc_info()[1]
    if is_outage(error):
        return outage_response(request, error)
    if is_api_request(request):
        return JsonResponse({"error": "Server error; try again, and tell us if it keeps happening."}, status=500)
    return defaults.server_error(request)

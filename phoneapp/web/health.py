"""``/healthz``: can this deployment take and classify uploads right now?"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from rest_framework.exceptions import AuthenticationFailed

from phoneapp.auth_backends import HashedTokenAuthentication
from phoneapp.services.health import health_report

logger = logging.getLogger(__name__)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when usable, 503 otherwise, with the failing parts named; each check answers one word, never an
    internal error text. ``?deep=1``: the slower probe (a write through the storage API, queue depth);
    ``?web=1``: only what this web process needs to take uploads (for a load balancer). The figures (active
    version, live workers, free space, queue depth) only for staff: see :func:`_shows_figures`."""
    from django.db import connection

    report = health_report(connection=connection, deep=_flag(request, "deep"), web_only=_flag(request, "web"))
    body = report.as_dict(figures=_shows_figures(request))
    return JsonResponse(body, status=200 if report.healthy else 503)


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name) in ("1", "true", "yes")


def _shows_figures(request: HttpRequest) -> bool:
    """Staff, signed in or sending a staff account's API key (``Authorization: Token <key>``, for a monitor), see
    the figures; anyone else only the state words. ``/healthz`` is public (load balancers ask it without an
    account), and how full the disk is, how many workers run and how long the queue is are nobody else's
    business. With the database down neither can be checked: the words only, never an error."""
    try:
        if request.user.is_authenticated and request.user.is_staff:
            return True
        # The API's own reading of the header (keyword in any case, the key's digest looked up).
        found = HashedTokenAuthentication().authenticate(request)  # type: ignore[arg-type]  # reads only META
        return found is not None and bool(getattr(found[0], "is_staff", False))
    except AuthenticationFailed:
        return False
    except DatabaseError:
        logger.debug("health check: who asks cannot be looked up", exc_info=True)
        return False

"""``/healthz``: can this deployment take and classify uploads right now?"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from phoneapp.services.health import health_report


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when usable, 503 otherwise; each check answers only ok/down, never an internal error text."""
    from django.db import connection

    report = health_report(connection=connection)
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)

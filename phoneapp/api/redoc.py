"""The ReDoc page of the API: drf-spectacular's view, with the one Content-Security-Policy exception ReDoc needs.

ReDoc styles itself by injecting ``<style>`` elements (styled-components), which the site's policy
(``CONTENT_SECURITY_POLICY``: ``style-src 'self'``) refuses, so under it the page showed only "Something went
wrong". This page alone allows inline styles; scripts still come from this site only, and the page shows nothing
but the public schema. Its template drops the Google Fonts links of drf-spectacular's own (nothing is loaded from
another host).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView
from rest_framework.request import Request
from rest_framework.response import Response

REDOC_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class RedocPage(SpectacularRedocView):
    template_name = "phoneapp/api/redoc.html"

    @extend_schema(exclude=True)  # as drf-spectacular's own: the page is not part of the API
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = REDOC_CONTENT_SECURITY_POLICY
        return response

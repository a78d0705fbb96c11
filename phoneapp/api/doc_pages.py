"""The API's documentation: its OpenAPI schema, answering anything but the schema itself as the rest of the API
does (JSON), and its pages, Swagger UI and ReDoc: drf-spectacular's views, answering ``GET`` (and ``HEAD``) only,
and ReDoc's with the one Content-Security-Policy exception it needs.

The schema view renders with the schema's renderers (YAML first, as drf-spectacular's), so a 405 for a ``POST``
was ``error: Method "POST" not allowed.`` in YAML, and ``OPTIONS`` its metadata in YAML, where every other API
address answers JSON.

The two pages are HTML drawn from a template, not API endpoints: DRF's ``OPTIONS`` answer (its metadata, drawn with
the page's renderer) found no template on Swagger's and answered 500, logging an ERROR with a traceback that any
anonymous caller could repeat at will. So the other methods are refused with 405 like on any page.

ReDoc styles itself by injecting ``<style>`` elements (styled-components), which the site's policy
(``CONTENT_SECURITY_POLICY``: ``style-src 'self'``) refuses, so under it the page showed only "Something went
wrong". This page alone allows inline styles; scripts still come from this site only, and the page shows nothing
but the public schema. Its template drops the Google Fonts links of drf-spectacular's own (nothing is loaded from
another host).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

REDOC_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


# Lower case, as Django's View.http_method_names: "options" left out on purpose (see the module's docstring).
PAGE_METHODS = ["get", "head"]


class SchemaApi(SpectacularAPIView):
    """This API's OpenAPI 3 schema, in YAML, or in JSON when asked for (Accept: application/json, or ?format=json)."""

    # The docstring above is what OPTIONS shows callers, as the other API views' do. Any answer but the schema (an
    # error, OPTIONS) is JSON like the rest of the API's (see the module's docstring).
    name = "OpenAPI schema"

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        if not _is_the_schema(request, response):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


def _is_the_schema(request: Request, response: Response) -> bool:
    """Whether ``response`` is the schema, the one answer drawn with the schema's own renderers."""
    return request.method in ("GET", "HEAD") and response.status_code < 400


class SwaggerPage(SpectacularSwaggerSplitView):
    """Swagger UI at ``/api/docs/``: drf-spectacular's page, ``GET`` and ``HEAD`` only, in a template that says its
    language (drf-spectacular's ``<html>`` has none, so a screen reader used its own default's voice)."""

    http_method_names = PAGE_METHODS
    template_name = "phoneapp/api/swagger.html"


class RedocPage(SpectacularRedocView):
    """ReDoc at ``/api/redoc/``, ``GET`` and ``HEAD`` only, under :data:`REDOC_CONTENT_SECURITY_POLICY`."""

    http_method_names = PAGE_METHODS
    template_name = "phoneapp/api/redoc.html"

    @extend_schema(exclude=True)  # as drf-spectacular's own: the page is not part of the API
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = REDOC_CONTENT_SECURITY_POLICY
        return response

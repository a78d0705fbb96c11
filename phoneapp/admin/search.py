"""The admin's searches: a term holding NUL finds nothing, as the history's and the API's name searches do."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from phoneapp.selectors.uploads import NUL


class NulFindsNothingSearch(admin.ModelAdmin):
    """Mixed into every admin with ``search_fields``: no stored text holds NUL (PostgreSQL text cannot), so a term
    with one matches nothing, and asked of PostgreSQL the search was a 500 (psycopg's DataError). The change list's
    search box already refuses such a term ("Null characters are not allowed."), but the admin's autocomplete
    endpoint (``/admin/autocomplete/?term=…``), which searches the same fields, passed it to the database."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if NUL in search_term:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

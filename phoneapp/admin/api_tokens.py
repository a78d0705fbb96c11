"""API tokens in the Django admin: listed and revoked here, never made or shown."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from phoneapp.admin.search import NulFindsNothingSearch
from phoneapp.models import ApiToken
from phoneapp.services.api_tokens import api_token_prefix

# API tokens: the admin lists who has one, its first characters and when it was made and last used; the key
# itself is not stored (only its SHA-256), so no page can show it. Deleting one here revokes it.
_TOKEN_FIELDS = ("user", "key_prefix", "created", "last_used")


@admin.register(ApiToken)
class ApiTokenAdmin(NulFindsNothingSearch):
    list_display = ["key_prefix", "user", "created", "last_used"]
    fields = _TOKEN_FIELDS
    readonly_fields = _TOKEN_FIELDS
    search_fields = ["user__username"]
    list_select_related = ["user"]
    ordering = ["-created"]

    @admin.display(description="key")
    def key_prefix(self, token: ApiToken) -> str:
        return api_token_prefix(token)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # people make their own on "Your API token"; a key made here could never be shown to them

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

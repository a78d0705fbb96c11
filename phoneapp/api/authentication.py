"""``Authorization: Token <key>`` against the hashed keys of :class:`phoneapp.models.ApiToken`.

A subclass of DRF's ``TokenAuthentication``: the same header parsing, keyword and errors, so a missing or bad key
still answers 401 with ``WWW-Authenticate: Token``; only the lookup differs (by the key's SHA-256 digest).
"""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.request import Request

from phoneapp.models import ApiToken
from phoneapp.services.api_tokens import api_token_authenticate


class HashedTokenAuthentication(TokenAuthentication):
    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[object, None]:
        user = api_token_authenticate(key=key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        # The token object is not handed on: nothing downstream needs it, and it holds no key anyway.
        return user, None


class AuthenticatedRequest(Request):
    """For the type checker: what a view behind ``IsAuthenticated`` (the API's default permission) receives, whose
    ``user`` is a :class:`User`, never ``AnonymousUser``. Never instantiated; DRF hands the view its own
    ``Request``."""

    user: User

"""Authentication backends: Django's model backend behind the login throttle (phoneapp/services/login_attempts.py),
and API keys (``Authorization: Token <key>``) for DRF and for ``/healthz``'s staff figures."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from phoneapp.models import ApiToken
from phoneapp.services.api_tokens import api_token_authenticate
from phoneapp.services.login_attempts import login_attempt_give_back, login_attempt_reserve

logger = logging.getLogger("phoneapp.services.login_attempts")  # where failed logins were always logged

# Set on a request whose attempt the throttle refused: such attempts are not counted again as failures, so the
# lock ends when the window does, not a minute after the guesser's last try.
REFUSED_ATTRIBUTE = "login_refused_for_seconds"


def client_address(request: Any) -> str | None:
    """The address a login attempt came from: the peer, or behind the TLS proxy (``BEHIND_TLS_PROXY``) the last
    ``X-Forwarded-For`` entry, the one our own proxy appended (the ones before it are the client's to invent)."""
    if request is None:
        return None
    from django.conf import settings

    meta = request.META
    if settings.SECURE_PROXY_SSL_HEADER and meta.get("HTTP_X_FORWARDED_FOR"):
        return meta["HTTP_X_FORWARDED_FOR"].split(",")[-1].strip() or None
    return meta.get("REMOTE_ADDR") or None


class ThrottledModelBackend(ModelBackend):
    """Refuses every attempt -- a right password too -- for an account or address past ``LOGIN_FAILURE_LIMIT``.

    Being the backend, it covers every door that calls ``authenticate()``: the login page, the admin's login,
    DRF's token endpoint. Those doors answer "wrong credentials" when refused; wrapping the view in
    :func:`phoneapp.login_throttle.login_throttled` turns that into a 429 with ``Retry-After`` and spares
    the password hashing.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        attempt = login_attempt_reserve(username=username, address=client_address(request))
        if attempt.wait is not None:
            if request is not None:
                setattr(request, REFUSED_ATTRIBUTE, attempt.wait)
            raise PermissionDenied(f"too many failed logins; retry in {attempt.wait} s")
        try:
            user = super().authenticate(request, username=username, password=password, **kwargs)
        except BaseException:
            login_attempt_give_back(attempt)  # not checked (the database was down): no failure
            raise
        if user is not None:
            login_attempt_give_back(attempt)
        return user


@receiver(user_login_failed)
def _log_failed_login(sender: object, credentials: dict[str, Any], request: Any = None, **_: object) -> None:
    """The failure is already counted (the backend counts every attempt first); this only logs it."""
    if request is not None and getattr(request, REFUSED_ATTRIBUTE, None) is not None:
        return
    logger.warning("login failed", extra={"address": client_address(request)})


class HashedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` against the hashed keys of :class:`phoneapp.models.ApiToken`.

    A subclass of DRF's ``TokenAuthentication``: the same header parsing, keyword and errors, so a missing or bad
    key still answers 401 with ``WWW-Authenticate: Token``; only the lookup differs (by the key's SHA-256 digest).
    Here, not in ``phoneapp/api``, because ``/healthz`` (a page view) reads the same header the same way."""

    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[object, None]:
        user = api_token_authenticate(key=key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        # The token object is not handed on: nothing downstream needs it, and it holds no key anyway.
        return user, None

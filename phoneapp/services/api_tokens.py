"""API tokens: one per user, created, regenerated and revoked by the user on the "Your API token" page.

The key is shown in full only once, on the page that created it; afterwards pages and the admin show its first
characters only (:func:`api_token_prefix`). ``POST /api/token/`` hands a script the current key (creating one
if there is none), as DRF's ``obtain_auth_token`` does.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import User
from django.db import transaction
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)

PREFIX_LENGTH = 6


def api_token_get(*, user: User) -> Token | None:
    """The user's token, or ``None`` when they have none."""
    return Token.objects.filter(user=user).first()


def api_token_get_or_create(*, user: User) -> Token:
    """The user's token, created if they have none (a script logging in for the first time)."""
    token, created = Token.objects.get_or_create(user=user)
    if created:
        logger.info("api token created", extra={"user_id": user.pk})
    return token


@transaction.atomic
def api_token_regenerate(*, user: User) -> Token:
    """A new key for the user; the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    logger.info("api token regenerated", extra={"user_id": user.pk})
    return token


def api_token_revoke(*, user: User) -> bool:
    """Remove the user's token; returns whether there was one. Scripts using it get 401 from then on."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        logger.info("api token revoked", extra={"user_id": user.pk})
    return bool(deleted)


def api_token_prefix(token: Token) -> str:
    """What may be shown after creation: enough to recognise a key, useless to use it."""
    return f"{token.key[:PREFIX_LENGTH]}…"

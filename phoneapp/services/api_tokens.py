"""API tokens: one per user, made, regenerated and revoked by the user on the "Your API token" page, or handed to
a script that sends its username and password to ``POST /api/token/``.

Only a SHA-256 digest of each key is stored (:class:`phoneapp.models.ApiToken`), so the key is known in full only
to whoever made it: the page that made it shows it once, and afterwards pages and the admin show its first
characters only. For the same reason ``POST /api/token/`` cannot hand back a key made earlier: every call makes a
new key and the old one stops working (it rotates).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone

from phoneapp.models import ApiToken

logger = logging.getLogger(__name__)

PREFIX_LENGTH = 6
# 20 random bytes as 40 hex characters: the shape of DRF's keys, so clients and docs need no change.
KEY_BYTES = 20
# last_used is written at most this often per token: an API client polling twice a second must not turn every
# read into a database write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_token_digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_get(*, user: User) -> ApiToken | None:
    """The user's token (prefix and dates; never the key), or ``None`` when they have none."""
    return ApiToken.objects.filter(user=user).first()


@transaction.atomic
def api_token_regenerate(*, user: User) -> str:
    """A new key for the user, returned in full this once; the old one stops working at once.

    Two calls at once for one user (a double click, two scripts asking ``POST /api/token/``) take turns on the
    user's row: both would otherwise delete nothing and then insert, and the second insert would break the
    one-token-per-user rule with a 500. The later call's key is the one that works.
    """
    User.objects.select_for_update().filter(pk=user.pk).first()
    key = secrets.token_hex(KEY_BYTES)
    existed, _ = ApiToken.objects.filter(user=user).delete()
    ApiToken.objects.create(user=user, prefix=key[:PREFIX_LENGTH], digest=api_token_digest(key))
    logger.info("api token %s", "regenerated" if existed else "created", extra={"user_id": user.pk})
    return key


def api_token_revoke(*, user: User) -> bool:
    """Remove the user's token; returns whether there was one. Scripts using it get 401 from then on."""
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    if deleted:
        logger.info("api token revoked", extra={"user_id": user.pk})
    return bool(deleted)


def api_token_authenticate(*, key: str) -> AbstractBaseUser | None:
    """The active user whose key this is, or ``None``; notes when the token was last used (to the minute)."""
    token = ApiToken.objects.select_related("user").filter(digest=api_token_digest(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user


def api_token_prefix(token: ApiToken) -> str:
    """What may be shown after creation: enough to recognise a key, useless to use it."""
    return f"{token.prefix}…"

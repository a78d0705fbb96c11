"""Deleting one's own account: the person, their pictures, their API token and their idempotency keys.

Staff accounts are not deleted this way: their reviews and ground-truth labels are the training data, and a
site's last administrator must not be able to lock everyone out with one form. An administrator deletes them
in the admin (the same cascade, through the same upload deletion).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction

from phoneapp.models import ApiToken, Upload
from phoneapp.services.errors import DomainError

logger = logging.getLogger(__name__)


class AccountNotSelfDeletable(DomainError):
    status_code = 403


def account_self_deletable(*, user: User) -> bool:
    """Whether ``user`` may delete their own account from the account page (not staff, not superusers)."""
    return not (user.is_staff or user.is_superuser)


def account_self_deletable_require(*, user: User) -> None:
    """Raise :class:`AccountNotSelfDeletable` for staff and superusers: checked before their password is (a wrong
    one would count as a failed login for a deletion that cannot happen anyway)."""
    if not account_self_deletable(user=user):
        raise AccountNotSelfDeletable(
            "Staff accounts are deleted by an administrator, in the admin: nothing was changed."
        )


@dataclass(frozen=True)
class DeletedAccount:
    """What went with an account, for the message its owner reads last."""

    pictures: int
    had_api_token: bool


def account_delete(*, user: User) -> DeletedAccount:
    """Delete ``user`` and everything that is theirs; says how many pictures went and whether an API token did.

    The user's pictures go through the one upload deletion (``phoneapp/receivers.py``), so their files are removed
    once the account's deletion commits and stay if it rolls back. Raises :class:`AccountNotSelfDeletable` for
    staff and superusers.
    """
    account_self_deletable_require(user=user)
    user_id = user.pk
    with transaction.atomic():
        deleted = DeletedAccount(
            pictures=Upload.objects.filter(owner=user).count(),
            had_api_token=ApiToken.objects.filter(user=user).exists(),
        )
        user.delete()
    logger.info("account deleted by its owner", extra={"user_id": user_id, "uploads": deleted.pictures})
    return deleted

"""The admin's action log after an account is deleted: it keeps what was done, not who it was done to.

Django's admin writes each object's text (``str(obj)``) into its log when an object is changed or deleted and keeps
it for good, after the object is gone. For an account that text is the username (often a person's name or e-mail
address), so "alice was deleted" outlived the deletion it records, in every entry staff ever made about her and in
the entries of her API tokens. Uploads and tokens name no person in their text (``Upload 9``, ``abcd1234… (user
3)``); entries written before that are rewritten here.
"""

from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType

from phoneapp.models import ApiToken


def admin_log_forget_account(*, user: AbstractBaseUser) -> int:
    """Rewrite the admin log's entries about ``user`` and their API tokens so none holds their username; the entries
    themselves stay (what staff did, and when, is the site's record). Returns how many were rewritten.

    Called while the account is deleted, in the same transaction: the admin writes its "deleted" entry just before
    it deletes, so that entry is rewritten too, and a rollback keeps the log as it was.
    """
    user_type = ContentType.objects.get_for_model(get_user_model())
    rewritten = LogEntry.objects.filter(content_type=user_type, object_id=str(user.pk)).update(
        object_repr=f"User {user.pk}"
    )
    # Token entries name no token the account still has (a revoked or replaced one is gone): found by the text the
    # token's ``__str__`` gave before it stopped naming its user.
    old_suffix = f"… ({user.get_username()})"
    token_type = ContentType.objects.get_for_model(ApiToken)
    for entry in LogEntry.objects.filter(content_type=token_type, object_repr__endswith=old_suffix):
        entry.object_repr = ApiToken.text_of(prefix=entry.object_repr.removesuffix(old_suffix), user_id=user.pk)
        entry.save(update_fields=["object_repr"])
        rewritten += 1
    return rewritten

"""Signal receivers that keep other doors to the data going through the services.

Deleting a user account (admin, shell, ``User.delete()``) cascades to their upload rows at the database level,
which would leave their pictures, thumbnails and heat maps in storage: someone erased from the product must not
stay on its disk. The receiver sends their uploads through the one deletion service first, so their files go once
the account's deletion commits, and stay if it rolls back. The admin's action log stops naming the account
(:func:`phoneapp.services.admin_log.admin_log_forget_account`) in the same transaction.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from phoneapp.models import Upload
from phoneapp.services.admin_log import admin_log_forget_account
from phoneapp.services.upload_deletion import uploads_delete


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="phoneapp.user_uploads_delete")
def _user_uploads_delete(sender: type, instance: Any, **_: object) -> None:
    uploads_delete(uploads=Upload.objects.filter(owner=instance))


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="phoneapp.user_admin_log_forget")
def _user_admin_log_forget(sender: type, instance: Any, **_: object) -> None:
    admin_log_forget_account(user=instance)

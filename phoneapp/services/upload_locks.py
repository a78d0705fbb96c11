"""Row locks on uploads, always taken in id order.

Every writer of several uploads (a review decision and its undo, the ground-truth actions, an account's deletion)
locks them oldest id first, before it changes any, so two writers of the same picture take turns: locking in the
order each came to the rows, two of them could each hold a row the other waited for, and PostgreSQL broke such a
deadlock by failing one of them (an error page).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

from phoneapp.models import Upload


def uploads_lock(*, ids: Sequence[int]) -> None:
    """Lock uploads ``ids`` until the current transaction ends, in id order."""
    _lock_in_id_order(Upload.objects.filter(pk__in=ids))


def pictures_lock(*, uploads: QuerySet[Upload]) -> None:
    """Lock every upload of the pictures (same sha256) among ``uploads`` until the current transaction ends, in
    one statement and in id order."""
    _lock_in_id_order(Upload.objects.filter(sha256__in=uploads.values("sha256")))


def _lock_in_id_order(rows: QuerySet[Upload]) -> None:
    list(rows.select_for_update().order_by("pk").values_list("pk", flat=True))

"""Who has a picture open in the review queue, so that reviewers working at once are handed different pictures.

A claim is a short lease, not a lock: it changes which picture the queue hands out next
(:mod:`phoneapp.selectors.review_queue`), nothing else. Opening a picture claims it for ``REVIEW_CLAIM_SECONDS``
and gives up the reviewer's earlier claim, so a reviewer holds at most one (the picture on their screen); a claim
past its time means nothing, so a reviewer who walks away holds nothing for long. A reviewer can still open a
claimed picture on purpose (a link, "Previous", or when nothing else is left) and the page says who has it; if both
decide, the stale-decision check in :mod:`phoneapp.services.reviews` keeps the first and refuses the second.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from phoneapp.models import Upload


def upload_review_claim(*, upload_id: int, reviewer: AbstractBaseUser) -> AbstractBaseUser | None:
    """Claim upload ``upload_id`` for ``reviewer`` unless another reviewer has it open, and give up the reviewer's other
    claims either way (they have moved on from those pictures).

    Returns the other reviewer when the picture is theirs (nothing changes then), ``None`` when it is now
    ``reviewer``'s. The claim is one conditional update, so of two reviewers opening the picture at once exactly
    one gets it.
    """
    now = timezone.now()
    free_or_own = (
        Q(review_claimed_until__isnull=True)
        | Q(review_claimed_until__lte=now)
        | Q(review_claimed_by__isnull=True)  # the holder's account was deleted
        | Q(review_claimed_by_id=reviewer.pk)
    )
    with transaction.atomic():
        # The picture on the reviewer's screen is the only one they hold, whether or not they get this one.
        Upload.objects.filter(review_claimed_by_id=reviewer.pk).exclude(pk=upload_id).update(
            review_claimed_by=None, review_claimed_until=None
        )
        claimed = Upload.objects.filter(free_or_own, pk=upload_id).update(
            review_claimed_by=reviewer, review_claimed_until=now + timedelta(seconds=settings.REVIEW_CLAIM_SECONDS)
        )
    if claimed:
        return None
    holder = Upload.objects.filter(pk=upload_id).select_related("review_claimed_by").first()
    return holder.review_claimed_by if holder is not None else None

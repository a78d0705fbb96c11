"""Reviewers' decisions: confirming or correcting what the model said, and taking a decision back."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from phoneapp.decision_selectors import upload_verdict
from phoneapp.models import Label, Upload, UploadStatus
from phoneapp.services.errors import DomainError

logger = logging.getLogger(__name__)

CONFIRM = "confirm"


class ReviewNeedsChoice(DomainError):
    """ "Confirm the model" on a picture the model is unsure about: there is no verdict to confirm."""


@dataclass(frozen=True)
class PriorReview:
    """What one upload held before a decision, so the decision can be undone exactly (JSON-safe: kept in the
    reviewer's session)."""

    upload_id: int
    label: str
    reviewer_id: int | None
    reviewed_at: str | None  # ISO 8601

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PriorReview:
        return cls(
            upload_id=int(data["upload_id"]),  # type: ignore[arg-type]
            label=str(data.get("label") or ""),
            reviewer_id=int(data["reviewer_id"]) if data.get("reviewer_id") else None,  # type: ignore[arg-type]
            reviewed_at=str(data["reviewed_at"]) if data.get("reviewed_at") else None,
        )


def uploads_set_reviewed_label(*, uploads: QuerySet[Upload], label: str, reviewer: AbstractBaseUser) -> int:
    """Record ``label`` as the truth for every upload in ``uploads``; returns how many were updated."""
    if label not in Label.values:
        raise ValueError(f"Unknown label {label!r}.")
    updated = uploads.update(reviewed_label=label, reviewed_by=reviewer, reviewed_at=timezone.now())
    logger.info("uploads reviewed", extra={"count": updated, "label": label, "reviewer_id": reviewer.pk})
    return updated


def uploads_confirm_predictions(*, uploads: QuerySet[Upload], reviewer: AbstractBaseUser) -> int:
    """Accept the model's verdict as the truth; uploads without a verdict yet are left alone."""
    done = uploads.filter(status=UploadStatus.DONE).exclude(predicted_label="")
    updated = done.update(reviewed_label=F("predicted_label"), reviewed_by=reviewer, reviewed_at=timezone.now())
    logger.info("predictions confirmed", extra={"count": updated, "reviewer_id": reviewer.pk})
    return updated


def upload_review(*, upload: Upload, label: str, reviewer: AbstractBaseUser) -> Upload:
    """Review one upload (the review queue's keyboard flow)."""
    uploads_set_reviewed_label(uploads=Upload.objects.filter(pk=upload.pk), label=label, reviewer=reviewer)
    upload.refresh_from_db()
    return upload


@transaction.atomic
def upload_group_review(*, upload: Upload, decision: str, reviewer: AbstractBaseUser) -> list[PriorReview]:
    """Decide on ``upload`` and every other unreviewed, classified upload of the same picture (same sha256).

    ``decision`` is ``phone``, ``not_phone`` or ``confirm`` (the model's label). Confirming is refused on a picture
    the model is unsure about (:class:`ReviewNeedsChoice`): the reviewer must say which it is. Returns what the
    labelled uploads held before, for :func:`uploads_review_restore` (undo).
    """
    if decision == CONFIRM:
        if upload_verdict(upload=upload) == "unsure":
            raise ReviewNeedsChoice("The model is unsure about this picture: choose phone or not a phone.")
        label = upload.predicted_label
    else:
        label = decision
    if label not in Label.values:
        raise ValueError(f"Unknown decision {decision!r}.")
    group = Upload.objects.filter(
        Q(pk=upload.pk) | Q(sha256=upload.sha256, status=UploadStatus.DONE, reviewed_label="")
    ).select_for_update()
    prior = [
        PriorReview(
            upload_id=row["pk"],
            label=row["reviewed_label"],
            reviewer_id=row["reviewed_by_id"],
            reviewed_at=row["reviewed_at"].isoformat() if row["reviewed_at"] else None,
        )
        for row in group.values("pk", "reviewed_label", "reviewed_by_id", "reviewed_at")
    ]
    uploads_set_reviewed_label(
        uploads=Upload.objects.filter(pk__in=[p.upload_id for p in prior]), label=label, reviewer=reviewer
    )
    return prior


def uploads_review_restore(*, prior: list[PriorReview], reviewer: AbstractBaseUser) -> int:
    """Undo a decision: put back what each upload held before it. Only labels this reviewer set are touched, so
    an undo never erases a later decision by someone else. Returns how many were restored."""
    restored = 0
    with transaction.atomic():
        for before in prior:
            reviewed_at = datetime.fromisoformat(before.reviewed_at) if before.reviewed_at else None
            restored += Upload.objects.filter(pk=before.upload_id, reviewed_by=reviewer).update(
                reviewed_label=before.label, reviewed_by_id=before.reviewer_id, reviewed_at=reviewed_at
            )
    logger.info("review undone", extra={"count": restored, "reviewer_id": reviewer.pk})
    return restored

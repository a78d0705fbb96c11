"""Reviewers' decisions: confirming or correcting what the model said."""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, QuerySet
from django.utils import timezone

from phoneapp.models import Label, Upload, UploadStatus

logger = logging.getLogger(__name__)


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

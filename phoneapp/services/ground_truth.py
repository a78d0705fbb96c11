"""Ground truth: pictures whose label staff have confirmed, which score every model version and never train one.

The retrain's promotion rule leans on this set (docs/retraining.md), so a label enters it only by a deliberate
staff action: the admin's "ground truth" actions or the review queue's ground-truth switch (key G). Every upload
of the same picture (same sha256) joins with it, so a duplicate can never slip into training.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from phoneapp.models import Label, Upload

logger = logging.getLogger(__name__)


@transaction.atomic
def uploads_mark_ground_truth(*, uploads: QuerySet[Upload], by: AbstractBaseUser, label: str | None = None) -> int:
    """Make ``label`` (or, when None, each upload's reviewed label) the ground truth of these pictures and of
    every other upload of them. Uploads without a label to confirm are left alone. Returns the pictures marked."""
    if label is not None and label not in Label.values:
        raise ValueError(f"Unknown label {label!r}.")
    marked = 0
    now = timezone.now()
    rows = uploads.values_list("sha256", "reviewed_label")
    for sha256, reviewed_label in {(sha, reviewed) for sha, reviewed in rows}:
        truth = label or reviewed_label
        if not truth:
            continue
        Upload.objects.filter(sha256=sha256).update(ground_truth_label=truth, ground_truth_by=by, ground_truth_at=now)
        marked += 1
    logger.info("ground truth marked", extra={"count": marked, "label": label, "by_id": by.pk})
    return marked


def uploads_unmark_ground_truth(*, uploads: QuerySet[Upload]) -> int:
    """Take these pictures (every upload of them) out of the ground-truth set; returns the uploads changed."""
    hashes = set(uploads.values_list("sha256", flat=True))
    return Upload.objects.filter(sha256__in=hashes).update(
        ground_truth_label="", ground_truth_by=None, ground_truth_at=None
    )

"""Ground truth: pictures whose label staff have confirmed, which score every model version and never train one.

The retrain's promotion rule leans on this set (docs/retraining.md), so a label enters it only by a deliberate
staff action: the admin's "ground truth" actions or the review queue's ground-truth switch (key G). Every upload
of the same picture (same sha256) joins with it, so a duplicate can never slip into training.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from phoneapp.models import Label, Upload, UploadQuerySet
from phoneapp.services.upload_locks import pictures_lock, uploads_lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroundTruthOutcome:
    """What marking ground truth did: the pictures it marked, and the selected uploads it left for a person."""

    marked: int  # pictures (every upload of each) now ground truth
    left_alone: int  # uploads without a settled label to confirm (only when no label was named): staff name one


@transaction.atomic
def uploads_mark_ground_truth(
    *, uploads: UploadQuerySet, by: AbstractBaseUser, label: str | None = None
) -> GroundTruthOutcome:
    """Make ``label`` (or, when None, each upload's reviewed label) the ground truth of these pictures and of
    every other upload of them. Uploads without a settled label to confirm are left alone, and counted: none yet,
    or a first review still waiting for, or disputed by, a second reviewer (staff name the label for those)."""
    if label is not None and label not in Label.values:
        raise ValueError(f"Unknown label {label!r}.")
    marked = 0
    left_alone = 0
    now = timezone.now()
    # Every upload of these pictures first, in id order: updated picture by picture in the order of a Python set
    # (which differs between selections and between web processes), two staff marking overlapping selections at
    # once each held a picture the other waited for, and PostgreSQL failed one of them (an error page).
    pictures_lock(uploads=uploads)
    if label is None:
        confirmable = uploads.label_settled().reviewed()
        left_alone = uploads.count() - confirmable.count()
        uploads = confirmable
    rows = uploads.values_list("sha256", "reviewed_label")
    for sha256, reviewed_label in {(sha, reviewed) for sha, reviewed in rows}:
        truth = label or reviewed_label
        Upload.objects.filter(sha256=sha256).update(ground_truth_label=truth, ground_truth_by=by, ground_truth_at=now)
        marked += 1
    logger.info("ground truth marked", extra={"count": marked, "label": label, "by_id": by.pk})
    return GroundTruthOutcome(marked=marked, left_alone=left_alone)


@transaction.atomic
def uploads_unmark_ground_truth(*, uploads: QuerySet[Upload]) -> int:
    """Take these pictures (every upload of them) out of the ground-truth set; returns the uploads changed."""
    pictures_lock(uploads=uploads)  # in id order, as marking does: one UPDATE locks rows in the order it finds them
    hashes = set(uploads.values_list("sha256", flat=True))
    return Upload.objects.filter(sha256__in=hashes).update(
        ground_truth_label="", ground_truth_by=None, ground_truth_at=None
    )


@dataclass(frozen=True)
class PriorGroundTruth:
    """What one upload's ground truth was before the review queue's G switch marked its picture, so an undo can put
    it back (JSON-safe: kept in the reviewer's session beside the review's ``PriorReview``)."""

    upload_id: int
    label: str
    by_id: int | None
    at: str | None  # ISO 8601

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriorGroundTruth:
        return cls(
            upload_id=int(data["upload_id"]),
            label=str(data.get("label") or ""),
            by_id=int(data["by_id"]) if data.get("by_id") else None,
            at=str(data["at"]) if data.get("at") else None,
        )


@transaction.atomic
def picture_mark_ground_truth(*, upload: Upload, by: AbstractBaseUser, label: str) -> list[PriorGroundTruth]:
    """Make ``label`` the ground truth of ``upload``'s picture (every upload of it); returns what each held before,
    for :func:`ground_truth_restore`."""
    rows = Upload.objects.select_for_update().filter(sha256=upload.sha256).order_by("pk")
    prior = [
        PriorGroundTruth(row["pk"], row["ground_truth_label"], row["ground_truth_by_id"], _iso(row["ground_truth_at"]))
        for row in rows.values("pk", "ground_truth_label", "ground_truth_by_id", "ground_truth_at")
    ]
    uploads_mark_ground_truth(uploads=Upload.objects.filter(pk=upload.pk), by=by, label=label)
    return prior


@transaction.atomic
def ground_truth_restore(*, prior: Sequence[PriorGroundTruth], by: AbstractBaseUser) -> int:
    """Undo :func:`picture_mark_ground_truth`: put back each upload's ground truth as it was. Only uploads whose
    ground truth ``by`` set are touched, so an undo never erases someone else's later decision. Returns how many."""
    restored = 0
    # In id order first, as a decision locks a picture's uploads: row by row in the order recorded (newest first),
    # this undo and a decision on the same picture at once could each hold a row the other waited for (a deadlock).
    uploads_lock(ids=[before.upload_id for before in prior])
    for before in prior:
        restored += Upload.objects.filter(pk=before.upload_id, ground_truth_by_id=by.pk).update(
            ground_truth_label=before.label,
            ground_truth_by_id=before.by_id,
            ground_truth_at=datetime.fromisoformat(before.at) if before.at else None,
        )
    logger.info("ground truth undone", extra={"count": restored, "by_id": by.pk})
    return restored


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None

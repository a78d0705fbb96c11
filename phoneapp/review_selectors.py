"""Reading the review queue: classified uploads nobody has reviewed yet, the ones the model is least sure of first.

The order is by distance of the probability from 0.5, then by id, so it is total and stable: "next" and
"previous" are well defined even for an upload that has just left the queue because it was reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, FloatField, Q, QuerySet
from django.db.models.functions import Abs
from django.http import Http404

from phoneapp.models import Upload, UploadStatus

UNCERTAINTY = Abs(F("probability") - 0.5, output_field=FloatField())


@dataclass(frozen=True)
class ReviewPlace:
    """Where an upload sits in the queue: its neighbours and how much is left."""

    previous_id: int | None
    next_id: int | None
    position: int  # 1-based among unreviewed uploads; 0 when the upload itself is no longer in the queue
    remaining: int


def review_queue() -> QuerySet[Upload]:
    """Done, not-yet-reviewed uploads of every user, most uncertain first."""
    return (
        Upload.objects.filter(status=UploadStatus.DONE, reviewed_label="")
        .select_related("model_version", "owner")
        .annotate(uncertainty=UNCERTAINTY)
        .order_by("uncertainty", "id")
    )


def review_queue_first() -> Upload | None:
    return review_queue().first()


def review_upload_get(*, upload_id: int) -> Upload:
    """Any classified upload (reviewers see everyone's), with its uncertainty; 404 if missing or not done."""
    try:
        return (
            Upload.objects.select_related("model_version", "owner", "reviewed_by")
            .annotate(uncertainty=UNCERTAINTY)
            .get(pk=upload_id, status=UploadStatus.DONE)
        )
    except Upload.DoesNotExist as error:
        raise Http404("No such classified upload.") from error


def review_place(*, upload: Upload) -> ReviewPlace:
    """The queue's neighbours of ``upload`` (annotated by :func:`review_upload_get`) and the count left."""
    queue = review_queue().exclude(pk=upload.pk)
    after = Q(uncertainty__gt=upload.uncertainty) | Q(uncertainty=upload.uncertainty, pk__gt=upload.pk)
    following = queue.filter(after).values_list("pk", flat=True).first()
    preceding = queue.exclude(after).order_by("-uncertainty", "-id").values_list("pk", flat=True).first()
    remaining = review_queue().count()
    in_queue = not upload.reviewed_label
    position = queue.exclude(after).count() + 1 if in_queue else 0
    return ReviewPlace(previous_id=preceding, next_id=following, position=position, remaining=remaining)


def review_next_after(*, upload: Upload) -> int | None:
    """What to show after deciding on ``upload``: the next in the queue, else the first left (skipped earlier)."""
    place = review_place(upload=upload)
    if place.next_id is not None:
        return place.next_id
    first = review_queue().exclude(pk=upload.pk).values_list("pk", flat=True).first()
    return first

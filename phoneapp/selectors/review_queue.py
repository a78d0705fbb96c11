"""Reading the review queue: classified uploads nobody has reviewed yet, the ones the model is least sure of first.

"Least sure" is judged by each upload's own model version (:mod:`phoneapp.selectors.decisions`): the distance of
its probability from that version's threshold in log-odds, scaled so the unsure band is 0 to 1 -- the band comes
first, closest to the threshold first. Right after the band come confident "phone" verdicts whose best box is only
a guess (drawn dashed): a reviewer's box there is what retraining most needs to learn where phones are. Ties are
broken by id, so the order is total and stable: "next" is well defined even for an upload that has just left the
queue because it was reviewed.

The same picture sent several times (same ``sha256``) is one item: the queue shows the group's oldest unreviewed
upload, and a decision on it labels the whole group.

Reviews waiting for a second reviewer (they contradicted a confident verdict, :mod:`phoneapp.services.reviews`)
come before everything else, for every reviewer except the one who made them.

A picture another reviewer has open (:mod:`phoneapp.services.review_claims`) is handed out last, after the
pictures this reviewer skipped: two reviewers starting at once get different pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Case, Exists, IntegerField, OuterRef, Q, Value, When
from django.utils import timezone

from phoneapp.errors import UploadNotFound
from phoneapp.models import SecondReview, Upload, UploadQuerySet, Verdict
from phoneapp.selectors.decisions import unsure_place_q


@dataclass(frozen=True)
class ReviewPlace:
    """Where an upload sits in the queue: its neighbours and how much is left."""

    previous_id: int | None  # the picture decided before this one in the reviewer's session (back / undo)
    next_id: int | None
    position: int  # 1-based among unreviewed uploads; 0 when the upload itself is no longer in the queue
    remaining: int
    duplicates: int = 0  # other uploads of the same picture that one decision labels too


def _waiting_q(reviewer_id: int | None) -> Q:
    """Reviews waiting for a second opinion that ``reviewer_id`` may give (not their own)."""
    return Q(second_review=SecondReview.WAITING) & ~Q(reviewed_by_id=reviewer_id) & ~Q(reviewed_label="")


def _open_with_another_q(reviewer_id: int | None) -> Q:
    """Uploads another reviewer has open now: a live claim (:mod:`phoneapp.services.review_claims`) not theirs."""
    return Q(review_claimed_until__gt=timezone.now(), review_claimed_by__isnull=False) & ~Q(
        review_claimed_by_id=reviewer_id
    )


def _needs_review(reviewer_id: int | None) -> UploadQuerySet:
    return Upload.objects.done().filter(Q(reviewed_label="") | _waiting_q(reviewer_id))


def _priority() -> Case:
    """0 for reviews waiting for a second reviewer (they hold training back); 1 for pictures the model is unsure
    of, in its verdict or in where the phone is; 2 for the rest. Needs the ``verdict`` annotation."""
    return Case(
        When(second_review=SecondReview.WAITING, then=Value(0)),
        When(Q(verdict=Verdict.UNSURE) | unsure_place_q(), then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


def review_queue(*, reviewer_id: int | None = None) -> UploadQuerySet:
    """Done uploads of every user that need ``reviewer_id``'s decision, one per picture: reviews waiting for a
    second reviewer first, then unreviewed ones most uncertain first (unsure verdicts, then phone verdicts with a
    dashed best box, then the rest)."""
    candidates = _needs_review(reviewer_id)
    earlier_twin = candidates.filter(sha256=OuterRef("sha256"), pk__lt=OuterRef("pk"))
    return (
        candidates.exclude(Exists(earlier_twin))
        .select_related("model_version", "owner", "reviewed_by")
        .with_verdict()
        .annotate(priority=_priority())
        .order_by("priority", "uncertainty", "id")
    )


def review_upload_in_queue(*, upload: Upload, reviewer_id: int | None) -> bool:
    """Whether ``upload`` still needs this reviewer's decision."""
    return _needs_review(reviewer_id).filter(pk=upload.pk).exists()


def review_queue_first(*, skipped: Sequence[int] = (), reviewer_id: int | None = None) -> Upload | None:
    """The head of the queue, leaving out what this reviewer skipped and what others have open while anything
    else is left."""
    queue = review_queue(reviewer_id=reviewer_id)
    free = queue.exclude(_open_with_another_q(reviewer_id))
    return free.exclude(pk__in=list(skipped)).first() or free.first() or queue.first()


def review_upload_exists(*, upload_id: int) -> bool:
    """Whether the upload is still there (an undo may come after its owner deleted it)."""
    return Upload.objects.filter(pk=upload_id).exists()


def review_upload_get(*, upload_id: int) -> Upload:
    """Any classified upload (reviewers see everyone's), with its uncertainty; :class:`UploadNotFound` if missing or
    not done."""
    try:
        return (
            Upload.objects.done()
            .select_related("model_version", "owner", "reviewed_by")
            .with_verdict()
            .annotate(priority=_priority())
            .get(pk=upload_id)
        )
    except Upload.DoesNotExist as error:
        raise UploadNotFound("No such classified upload.") from error


def review_duplicates(*, upload: Upload) -> UploadQuerySet:
    """The other classified uploads of the same picture: a decision on ``upload`` labels them too
    (:func:`phoneapp.services.reviews.upload_group_review`)."""
    return Upload.objects.done().filter(sha256=upload.sha256).exclude(pk=upload.pk)


def review_earlier_label(*, upload: Upload) -> Upload | None:
    """The latest reviewed other upload of the same picture, when ``upload`` itself has no label: the picture was
    sent again after a reviewer decided on it, and the queue shows it again (the label stays with the upload that
    was reviewed). Its page says what was decided before."""
    if upload.reviewed_label:
        return None
    reviewed = review_duplicates(upload=upload).exclude(reviewed_label="").select_related("reviewed_by")
    return reviewed.order_by("-reviewed_at", "-pk").first()


def _after(upload: Upload) -> Q:
    # The ignore: ``priority`` and ``uncertainty`` are annotations (review_upload_get), not model fields.
    priority, uncertainty = upload.priority, upload.uncertainty  # type: ignore[attr-defined]
    return (
        Q(priority__gt=priority)
        | Q(priority=priority, uncertainty__gt=uncertainty)
        | Q(priority=priority, uncertainty=uncertainty, pk__gt=upload.pk)
    )


def review_place(
    *,
    upload: Upload,
    history: Sequence[int] = (),
    skipped: Sequence[int] = (),
    reviewer_id: int | None = None,
    arrived_from: int | None = None,
) -> ReviewPlace:
    """The queue's neighbours of ``upload`` (annotated by :func:`review_upload_get`) and the count left.

    "Next" is :func:`_following`. ``skipped``: what this reviewer skipped in this session, handed out after the
    rest, and counted so in the position. ``history`` is the ids this reviewer decided in this session, oldest
    first. "Previous" is where the reviewer has been, not where the queue's order puts the picture: from a decided
    picture, the one decided before it; from an undecided one, the picture whose decision or skip handed it out
    (``arrived_from``: by the queue's order alone, ← after S, → and P led past the picture just decided to the
    skipped one); else, for a picture reached with "Next", :func:`_preceding`; else the last one decided, so a
    reviewer can always go back to what they just did.
    """
    queue = review_queue(reviewer_id=reviewer_id).exclude(pk=upload.pk)
    following = _following(queue, upload, skipped, reviewer_id)
    remaining = review_queue(reviewer_id=reviewer_id).count()
    in_queue = review_upload_in_queue(upload=upload, reviewer_id=reviewer_id)
    position = _position(queue, upload, skipped) if in_queue else 0
    previous_id: int | None
    if upload.pk in history:
        earlier = list(history[: history.index(upload.pk)])
        previous_id = earlier[-1] if earlier else None
    elif (
        arrived_from is not None
        and arrived_from != upload.pk
        and Upload.objects.done().filter(pk=arrived_from).exists()  # not deleted since: ← would answer 404
    ):
        previous_id = arrived_from
    elif not in_queue:
        previous_id = history[-1] if history else None
    else:
        # As "next" does: a picture another reviewer has open meanwhile is passed over, unless nothing else is left.
        previous_id = _preceding(queue.exclude(_open_with_another_q(reviewer_id)), upload, skipped)
        if previous_id is None:
            previous_id = history[-1] if history else _preceding(queue, upload, skipped)
    return ReviewPlace(
        previous_id=previous_id,
        next_id=following,
        position=position,
        remaining=remaining,
        duplicates=review_duplicates(upload=upload).count(),
    )


def _preceding(queue: UploadQuerySet, upload: Upload, skipped: Sequence[int]) -> int | None:
    """ "Previous" for a picture reached with "Next": the one before ``upload`` in the order "Next" walks (the
    queue's, skipped pictures behind the rest), so ← takes back → -- in the queue's own order a skipped picture
    still came before the rest, and ← from a later picture went to it. Nothing comes before the first picture not
    skipped: going round to the last skipped one would make ← walk in circles."""
    skipped_ids = list(skipped)
    # ``queue`` is in the queue's order (:func:`review_queue`): reversed, its first is the nearest before.
    before = queue.exclude(_after(upload)).reverse().values_list("pk", flat=True)
    if upload.pk not in skipped_ids:
        return before.exclude(pk__in=skipped_ids).first()
    not_skipped = queue.exclude(pk__in=skipped_ids).reverse()
    return before.filter(pk__in=skipped_ids).first() or not_skipped.values_list("pk", flat=True).first()


def _following(queue: UploadQuerySet, upload: Upload, skipped: Sequence[int], reviewer_id: int | None) -> int | None:
    """ "Next": the picture after ``upload`` in the order :func:`_position` counts (the queue's, with what this
    reviewer skipped behind the rest), passing over pictures another reviewer has open as the queue does after a
    decision; when only such pictures follow, still the first of them (its page says who has it open). From the
    last skipped picture, the first picture not skipped that is still in the queue: a reviewer who went back (←)
    to a picture they had skipped found "Next" greyed out while pictures they had not skipped were unreviewed."""
    skipped_ids = list(skipped)
    if upload.pk in skipped_ids:
        candidates = [queue.filter(pk__in=skipped_ids).filter(_after(upload)), queue.exclude(pk__in=skipped_ids)]
    else:
        candidates = [queue.filter(_after(upload)).exclude(pk__in=skipped_ids), queue.filter(pk__in=skipped_ids)]
    for rest in candidates:
        ids = rest.values_list("pk", flat=True)
        chosen = ids.exclude(_open_with_another_q(reviewer_id)).first() or ids.first()
        if chosen is not None:
            return chosen
    return None


def _position(queue: UploadQuerySet, upload: Upload, skipped: Sequence[int]) -> int:
    """1-based place of ``upload`` in the order this reviewer is handed pictures: the queue's order, with what they
    skipped moved behind the rest (``queue`` leaves ``upload`` out)."""
    ahead = queue.exclude(_after(upload))
    if upload.pk not in skipped:
        return ahead.exclude(pk__in=list(skipped)).count() + 1
    return queue.exclude(pk__in=list(skipped)).count() + ahead.filter(pk__in=list(skipped)).count() + 1


def review_next_after(*, upload: Upload, skipped: Sequence[int] = (), reviewer_id: int | None = None) -> int | None:
    """What to show after deciding on (or skipping) ``upload``: a review waiting for this reviewer's second opinion,
    else the next in the queue neither skipped nor open with another reviewer, else the first such from the start,
    else the first skipped, else one another reviewer has open."""
    queue = review_queue(reviewer_id=reviewer_id).exclude(pk=upload.pk)
    free = queue.exclude(_open_with_another_q(reviewer_id))
    # A review waiting for this reviewer's second opinion comes first, even when it sits before ``upload`` in the
    # queue's order (it arrived while they worked): walking on from ``upload`` reached it only at the very end.
    waiting = free.filter(second_review=SecondReview.WAITING).exclude(pk__in=list(skipped))
    following = waiting.values_list("pk", flat=True).first()
    if following is None:
        following = free.filter(_after(upload)).exclude(pk__in=list(skipped)).values_list("pk", flat=True).first()
    if following is not None:
        return following
    for candidates in (free.exclude(pk__in=list(skipped)), free, queue):
        first = candidates.values_list("pk", flat=True).first()
        if first is not None:
            return first
    return None

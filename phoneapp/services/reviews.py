"""Reviewers' decisions: confirming or correcting what the model said, where the phones are, and taking a decision
back.

Two rules keep wrong labels out of training (docs/retraining.md):

- at the first review each picture is put, once and for good, in the ``train`` or the ``eval`` split by a stable
  hash of its sha256 (:func:`review_split_of`), so duplicates land together and eval pictures never train;
- a review that contradicts a *confident* verdict (the model outside its unsure band, on the other side) waits
  for a second reviewer (``second_review = waiting``); retraining uses it only once a second reviewer agrees.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from phoneapp.client_json import client_json_loads
from phoneapp.errors import UploadNotFound
from phoneapp.models import Label, ReviewSplit, SecondReview, Upload, UploadQuerySet, UploadStatus, Verdict
from phoneapp.selectors.decisions import upload_verdict
from phoneapp.services.errors import DomainError
from phoneapp.services.ground_truth import PriorGroundTruth, picture_mark_ground_truth
from phoneapp.services.upload_locks import pictures_lock, uploads_lock

logger = logging.getLogger(__name__)

CONFIRM = "confirm"
# One picture in five measures every version instead of training the next one.
EVAL_PERCENT = 20
MAX_BOXES = 20


class ReviewNeedsChoice(DomainError):
    """ "Confirm the model" on a picture the model is unsure about: there is no verdict to confirm."""


class ReviewConflict(DomainError):
    """Another reviewer decided on the picture while this one had it open; nothing was saved."""

    status_code = 409


class ReviewDisputed(DomainError):
    """Two reviewers disagree on the picture: a plain decision would settle the dispute by one of them (or by
    whoever came third), unseen; it is settled as ground truth instead. Nothing was saved."""

    status_code = 409


def dispute_words(upload: Upload) -> str:
    """``rita said phone, sam not a phone``: the two sides of a disputed picture, for the pages and messages."""
    first = upload.reviewed_by.get_username() if upload.reviewed_by else "the first reviewer"
    second = upload.second_reviewed_by.get_username() if upload.second_reviewed_by else "a second reviewer"
    return (
        f"{first} said {Label(upload.reviewed_label).label.lower()}, "
        f"{second} {Label(upload.second_label).label.lower() if upload.second_label else 'the opposite'}"
    )


def upload_review_state(*, upload: Upload) -> str:
    """A token of the upload's review as a page shows it (label, who, when, second review): the page posts it back
    with a decision, and a different one means someone decided meanwhile (see :func:`upload_group_review`)."""
    reviewed_at = upload.reviewed_at.isoformat() if upload.reviewed_at else ""
    return "|".join(
        str(value)
        for value in (
            upload.reviewed_label,
            upload.reviewed_by_id or "",
            reviewed_at,
            upload.second_review,
            upload.second_reviewed_by_id or "",
        )
    )


class BadBoxes(DomainError):
    """Boxes a reviewer sent that are not inside the picture; nothing was saved."""


def review_split_of(*, sha256: str) -> str:
    """``eval`` for a stable ``EVAL_PERCENT`` of pictures, else ``train``: a hash of the picture's sha256, so every
    upload of the same picture, now or later, gets the same split."""
    bucket = int(hashlib.sha256(f"review-split:{sha256}".encode()).hexdigest()[:8], 16) % 100
    return ReviewSplit.EVAL if bucket < EVAL_PERCENT else ReviewSplit.TRAIN


def review_boxes_parse(*, raw: Any) -> list[dict[str, list[float]]]:
    """Reviewer's boxes as stored (``[{"box": [x1, y1, x2, y2]}, ...]``) from JSON text or a list of boxes or
    ``{"box": ...}`` objects; raises :class:`BadBoxes` naming the problem."""
    if isinstance(raw, str):
        try:
            raw = client_json_loads(raw) if raw.strip() else []
        except ValueError as error:  # JSONDecodeError, or a number too long to convert
            reason = error.msg if isinstance(error, json.JSONDecodeError) else "a number is too long"
            raise BadBoxes(f"Boxes must be JSON: {reason}.") from error
    if not isinstance(raw, list):
        raise BadBoxes("Boxes must be a list of [x1, y1, x2, y2].")
    if len(raw) > MAX_BOXES:
        raise BadBoxes(f"At most {MAX_BOXES} boxes per picture.")
    boxes = []
    for item in raw:
        corners = item.get("box") if isinstance(item, dict) else item
        try:
            # A dict without "box" gives None: no corners, refused below like any other malformed box.
            x1, y1, x2, y2 = (round(float(value), 4) for value in corners or ())
        except (TypeError, ValueError) as error:
            raise BadBoxes(f"A box is four numbers x1, y1, x2, y2, not {corners!r}.") from error
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise BadBoxes(f"Box {[x1, y1, x2, y2]} is not inside the picture (fractions, x1 < x2, y1 < y2).")
        boxes.append({"box": [x1, y1, x2, y2]})
    return boxes


def _contradicts_confident_verdict(upload: Upload, label: str) -> bool:
    verdict = upload_verdict(upload=upload)
    return verdict in Label.values and verdict != label


@dataclass(frozen=True)
class PriorReview:
    """What one upload held before a decision, so the decision can be undone exactly (JSON-safe: kept in the
    reviewer's session)."""

    upload_id: int
    label: str
    reviewer_id: int | None
    reviewed_at: str | None  # ISO 8601
    extra: dict[str, Any] = field(default_factory=dict)  # boxes, split and second-review fields, as they were

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriorReview:
        # ``data`` is JSON read back from the session: its values' types are what ``to_dict`` wrote.
        return cls(
            upload_id=int(data["upload_id"]),
            label=str(data.get("label") or ""),
            reviewer_id=int(data["reviewer_id"]) if data.get("reviewer_id") else None,
            reviewed_at=str(data["reviewed_at"]) if data.get("reviewed_at") else None,
            extra=dict(data.get("extra") or {}),
        )


# What an undo puts back besides the label (see PriorReview.extra).
_EXTRA_FIELDS = ("reviewed_boxes", "review_split", "second_review", "second_label", "second_reviewed_by_id")


def uploads_set_reviewed_label(*, uploads: UploadQuerySet, label: str, reviewer: AbstractBaseUser) -> int:
    """Record ``label`` as the truth for every upload in ``uploads``; returns how many were updated."""
    if label not in Label.values:
        raise ValueError(f"Unknown label {label!r}.")
    updated = uploads.update(reviewed_label=label, reviewed_by=reviewer, reviewed_at=timezone.now())
    _assign_splits(uploads)
    logger.info("uploads reviewed", extra={"count": updated, "label": label, "reviewer_id": reviewer.pk})
    return updated


def uploads_clear_review(*, uploads: UploadQuerySet, reviewer: AbstractBaseUser) -> int:
    """Take the review off these uploads and every other upload of the same pictures (one picture, one label, as
    :func:`upload_group_review` decides it), second opinion included: the pictures go back to the review queue as
    unreviewed. A second review left "waiting" without the label it was waiting on put the picture first in the
    queue as a second opinion on nothing, and counted it as held. Returns how many uploads were updated. The pictures
    keep their split: it was fixed at their first review and must not move between train and eval. The reviewer's
    boxes go too."""
    pictures = uploads.values("sha256")
    # The copies as upload_group_review finds them: the classified uploads of the same pictures.
    copies = Q(sha256__in=pictures, status=UploadStatus.DONE)
    updated = Upload.objects.filter(Q(pk__in=uploads.values("pk")) | copies).update(
        reviewed_label="",
        reviewed_by=None,
        reviewed_at=None,
        # The reviewer's boxes go with the review: kept, the queue showed them on the "unreviewed" picture as if
        # they were the model's, and "confirm the model" saved them onto every copy.
        reviewed_boxes=None,
        second_review=SecondReview.NOT_NEEDED,
        second_label="",
        second_reviewed_by=None,
    )
    logger.info("reviews cleared", extra={"count": updated, "reviewer_id": reviewer.pk})
    return updated


def upload_set_reviewed_boxes(
    *, upload: Upload, boxes: Sequence[dict[str, list[float]]] | None, reviewer: AbstractBaseUser
) -> None:
    """Store where the reviewer says the phones are (parsed by :func:`review_boxes_parse`; None = not drawn)."""
    Upload.objects.filter(pk=upload.pk).update(reviewed_boxes=None if boxes is None else list(boxes))
    logger.info(
        "review boxes set", extra={"upload_id": upload.pk, "count": len(boxes or []), "reviewer_id": reviewer.pk}
    )


@dataclass(frozen=True)
class ConfirmOutcome:
    """What a bulk "confirm the model's verdict" did: ``confirmed`` uploads, and those it left for a person."""

    confirmed: int
    unsure: int  # the model is unsure: a reviewer must choose
    not_open: int  # not classified yet, or already reviewed (confirming must not overwrite a review)


def uploads_confirm_predictions(*, uploads: UploadQuerySet, reviewer: AbstractBaseUser) -> ConfirmOutcome:
    """Accept the model's verdict as the truth, as the review queue's "confirm" does (:func:`upload_group_review`):
    refused where the model is unsure, and only on classified uploads nobody has reviewed yet, so a bulk action
    never turns a guess into a label nor overwrites a first or second reviewer's decision."""
    open_for_review = uploads.done().unreviewed()
    confirmed = unsure = 0
    for upload in open_for_review.order_by("pk"):
        if Upload.objects.filter(pk=upload.pk).reviewed().exists():
            continue  # decided meanwhile, e.g. as another upload of the same picture confirmed just before
        try:
            upload_group_review(upload=upload, decision=CONFIRM, reviewer=reviewer)
        except ReviewNeedsChoice:
            unsure += 1
        except UploadNotFound:
            continue  # deleted meanwhile by its owner (or retention): nothing to confirm
        else:
            confirmed += 1
    outcome = ConfirmOutcome(confirmed=confirmed, unsure=unsure, not_open=uploads.count() - confirmed - unsure)
    logger.info("predictions confirmed", extra={"count": confirmed, "unsure": unsure, "reviewer_id": reviewer.pk})
    return outcome


def _assign_splits(uploads: UploadQuerySet) -> None:
    """Give each newly reviewed picture its split, once: a split already set is never changed."""
    for sha256 in set(uploads.filter(review_split="").reviewed().values_list("sha256", flat=True)):
        Upload.objects.filter(sha256=sha256, review_split="").update(review_split=review_split_of(sha256=sha256))


def _decided_label(*, upload: Upload, decision: str) -> str:
    """The label a decision gives: the model's for ``confirm`` (refused where the model is unsure), else itself."""
    if decision == CONFIRM:
        if upload_verdict(upload=upload) == Verdict.UNSURE:
            raise ReviewNeedsChoice("The model is unsure about this picture: choose phone or not a phone.")
        label = upload.predicted_label
    else:
        label = decision
    if label not in Label.values:
        raise ValueError(f"Unknown decision {decision!r}.")
    return label


@dataclass(frozen=True)
class ReviewDecision:
    """What one decision in the review queue changed: the label it gave, and what it replaced (for its undo)."""

    label: str
    prior: list[PriorReview]
    prior_ground_truth: list[PriorGroundTruth]


@transaction.atomic
def upload_review_decide(
    *,
    upload: Upload,
    decision: str,
    reviewer: AbstractBaseUser,
    boxes: Sequence[dict[str, list[float]]] | None = None,
    seen_state: str | None = None,
    as_ground_truth: bool = False,
) -> ReviewDecision:
    """The review queue's decision: :func:`upload_group_review`, and with ``as_ground_truth`` the same label as the
    picture's ground truth (:func:`picture_mark_ground_truth`), in one transaction. They were two: a failure in the
    second left the review saved without its ground truth, and without the undo entry that names both. The caller
    checks the ground-truth permission."""
    label = _decided_label(upload=upload, decision=decision)  # once: confirm became the model's label here
    prior = upload_group_review(
        upload=upload,
        decision=label,
        reviewer=reviewer,
        boxes=boxes,
        seen_state=seen_state,
        as_ground_truth=as_ground_truth,
    )
    prior_ground_truth = picture_mark_ground_truth(upload=upload, by=reviewer, label=label) if as_ground_truth else []
    return ReviewDecision(label=label, prior=prior, prior_ground_truth=prior_ground_truth)


@transaction.atomic
def upload_group_review(
    *,
    upload: Upload,
    decision: str,
    reviewer: AbstractBaseUser,
    boxes: Sequence[dict[str, list[float]]] | None = None,
    seen_state: str | None = None,
    as_ground_truth: bool = False,
) -> list[PriorReview]:
    """Decide on ``upload`` and every other classified upload of the same picture (same sha256).

    ``decision`` is ``phone``, ``not_phone`` or ``confirm`` (the model's label). Confirming is refused on a picture
    the model is unsure about (:class:`ReviewNeedsChoice`): the reviewer must say which it is. ``boxes`` (already
    parsed by :func:`review_boxes_parse`) are where the reviewer says the phones are; None keeps what was stored.

    A first review that contradicts a confident verdict is stored as *waiting* for a second reviewer. When a
    different reviewer then decides on a waiting picture, their label is recorded as the second opinion (the first
    label stays): ``agreed`` makes the picture usable for training, ``disagreed`` keeps it out until staff settle
    it as ground truth: a plain decision on a disputed picture raises :class:`ReviewDisputed` (one of the two
    deciding again settled it their way, unseen). ``as_ground_truth``: the decision is made the picture's ground
    truth with it (:func:`upload_review_decide`), which settles a dispute and waits for nobody. Returns what the
    labelled uploads held before, for :func:`uploads_review_restore`.

    ``seen_state`` is :func:`upload_review_state` as the reviewer's page showed it; when the picture's review has
    changed since (two reviewers on the same picture), :class:`ReviewConflict` is raised and nothing is saved, so
    a decision made on an outdated page never silently replaces someone else's.
    """
    label = _decided_label(upload=upload, decision=decision)
    current = _picture_lock(upload=upload)
    if seen_state is not None:
        _refuse_if_changed_since_seen(current=current, seen_state=seen_state, reviewer=reviewer)
    if not as_ground_truth:
        _refuse_if_disputed(current=current)
    second_opinion = _is_second_opinion(current=current, reviewer=reviewer)
    prior = _priors(_copies_decided_together(upload=upload, second_opinion=second_opinion))
    ids = [p.upload_id for p in prior]
    # The reviewer's boxes stored with the label: a picture without a phone has none.
    box_changes: dict[str, Any] = {}
    if boxes is not None:
        box_changes["reviewed_boxes"] = list(boxes) if label == Label.PHONE else []
    if second_opinion:
        _record_second_opinion(
            ids=ids, box_changes=box_changes, label=label, first_label=current.reviewed_label, reviewer=reviewer
        )
    else:
        waiting = not as_ground_truth and _contradicts_confident_verdict(current, label)
        _record_review(ids=ids, box_changes=box_changes, label=label, waiting=waiting, reviewer=reviewer)
    return prior


def _picture_lock(*, upload: Upload) -> Upload:
    """Lock every upload of ``upload``'s picture (same sha256) in id order (:mod:`phoneapp.services.upload_locks`),
    and return ``upload``'s row as it is now.

    All of them, first, in one order: each decision used to lock its own upload, then the other copies. Two reviewers
    deciding at once on two uploads of one picture (each shown their own copy) then each held the row the other
    waited for, and PostgreSQL broke the deadlock by failing one of them, answered as an outage (503).

    Raises :class:`UploadNotFound` when ``upload`` was deleted since the caller read it (its owner deleting it as
    the reviewer decides): nothing is saved, and the page answers 404 as it does to a decision sent just after."""
    pictures_lock(uploads=Upload.objects.filter(pk=upload.pk))
    current = Upload.objects.filter(pk=upload.pk).first()
    if current is None:
        raise UploadNotFound("This picture was deleted while you had it open; nothing was saved.")
    return current


def upload_review_seen_require(*, upload: Upload, seen_state: str, reviewer: AbstractBaseUser) -> Upload:
    """For a change of the review made outside the queue (the admin's form), inside the caller's transaction: lock
    the picture's uploads as a decision does, and raise :class:`ReviewConflict` when its review is no longer the one
    ``seen_state`` (:func:`upload_review_state`) names, as the queue refuses a decision made on an outdated page.
    Returns the upload as it is now, locked until the transaction ends."""
    current = _picture_lock(upload=upload)
    _refuse_if_changed_since_seen(current=current, seen_state=seen_state, reviewer=reviewer)
    return current


def _refuse_if_disputed(*, current: Upload) -> None:
    """Raise :class:`ReviewDisputed` when two reviewers disagree on the picture (``current``, locked): only a
    ground-truth decision settles it."""
    if current.second_review == SecondReview.DISAGREED:
        raise ReviewDisputed(
            f"{dispute_words(current)}: a disputed picture is settled as ground truth (the ground-truth switch, G, "
            "with your decision, or the admin's ground-truth actions), by staff who may change uploads. Nothing was "
            "saved."
        )


def _is_second_opinion(*, current: Upload, reviewer: AbstractBaseUser) -> bool:
    """Whether ``reviewer``'s decision is the second opinion the picture waits for: a first review is there, and it
    is someone else's."""
    return bool(
        current.second_review == SecondReview.WAITING
        and current.reviewed_label
        and current.reviewed_by_id != reviewer.pk
    )


def _copies_decided_together(*, upload: Upload, second_opinion: bool) -> UploadQuerySet:
    """``upload`` and the other classified uploads of the same picture that the decision labels, locked: for a
    second opinion, the copies waiting for it; else every copy."""
    if second_opinion:
        return Upload.objects.filter(
            Q(pk=upload.pk) | Q(sha256=upload.sha256, status=UploadStatus.DONE, second_review=SecondReview.WAITING)
        ).select_for_update()
    # Every copy of the picture, reviewed or not: one picture has one label (deciding again on one copy, in the
    # queue or the admin, used to relabel that copy alone and leave the others as they were).
    return Upload.objects.filter(
        Q(pk=upload.pk) | Q(sha256=upload.sha256, status=UploadStatus.DONE)
    ).select_for_update()


def _record_second_opinion(
    *, ids: list[int], box_changes: dict[str, Any], label: str, first_label: str, reviewer: AbstractBaseUser
) -> None:
    """Store ``label`` as the second opinion on uploads ``ids`` (their first label stays): agreeing makes them
    usable for training, disagreeing keeps them out until staff settle them as ground truth."""
    agreed = label == first_label
    Upload.objects.filter(pk__in=ids).update(
        **box_changes,
        second_label=label,
        second_reviewed_by=reviewer,
        second_review=SecondReview.AGREED if agreed else SecondReview.DISAGREED,
    )
    logger.info("second review", extra={"count": len(ids), "agreed": agreed, "reviewer_id": reviewer.pk})


def _record_review(
    *, ids: list[int], box_changes: dict[str, Any], label: str, waiting: bool, reviewer: AbstractBaseUser
) -> None:
    """Store ``label`` as the review of uploads ``ids``, any earlier second review replaced: ``waiting`` for a
    second reviewer when it contradicts a confident verdict."""
    Upload.objects.filter(pk__in=ids).update(
        **box_changes,
        second_review=SecondReview.WAITING if waiting else SecondReview.NOT_NEEDED,
        second_label="",
        second_reviewed_by=None,
    )
    uploads_set_reviewed_label(uploads=Upload.objects.filter(pk__in=ids), label=label, reviewer=reviewer)


def _refuse_if_changed_since_seen(*, current: Upload, seen_state: str, reviewer: AbstractBaseUser) -> None:
    """Raise :class:`ReviewConflict` when the picture's review (``current``, locked) is no longer the one the
    reviewer's page showed (``seen_state``): a decision made on an outdated page must not replace another."""
    if seen_state == upload_review_state(upload=current):
        return
    who = current.second_reviewed_by or current.reviewed_by
    # The reviewer themselves, from another tab or an older copy of the page, is told so, not named.
    if who is not None and who.pk == reviewer.pk:
        decided = "You decided on this picture elsewhere (another tab or window)"
    else:
        decided = f"{who.get_username() if who else 'Another reviewer'} decided on this picture while you had it open"
    raise ReviewConflict(
        f"{decided}"
        f" (it is now {current.get_reviewed_label_display().lower() or 'unreviewed'}); nothing was saved. Reload"
        " it to decide again."
    )


def _priors(group: UploadQuerySet) -> list[PriorReview]:
    """What each upload of ``group`` holds before the decision, for its undo (:func:`uploads_review_restore`)."""
    columns = ("pk", "reviewed_label", "reviewed_by_id", "reviewed_at", *_EXTRA_FIELDS)
    return [
        PriorReview(
            upload_id=row["pk"],
            label=row["reviewed_label"],
            reviewer_id=row["reviewed_by_id"],
            reviewed_at=row["reviewed_at"].isoformat() if row["reviewed_at"] else None,
            extra={name: row[name] for name in _EXTRA_FIELDS},
        )
        for row in group.values(*columns)
    ]


@dataclass(frozen=True)
class ReviewOutcome:
    """What a bulk relabelling did, in the counts its caller reports."""

    labelled: frozenset[int]  # ids of every upload labelled: the selected ones and the other uploads of their pictures
    selected: int  # uploads asked for
    waiting: int  # labelled uploads whose label contradicts a confident verdict: they wait for a second reviewer
    disputed: int = 0  # selected uploads left alone: two reviewers disagree on them (settled as ground truth)

    @property
    def copies(self) -> int:
        """Uploads labelled besides the selected ones (those left alone as disputed not among them): other uploads
        of the same pictures."""
        return len(self.labelled) - (self.selected - self.disputed)


def uploads_review(*, uploads: UploadQuerySet, label: str, reviewer: AbstractBaseUser) -> ReviewOutcome:
    """Decide ``label`` for each of ``uploads`` as the review queue would (:func:`upload_group_review`: the
    second-review rule, second opinions, unreviewed copies of the same picture); the admin's relabelling goes
    through here so it cannot train on a contradicted confident verdict without a second reviewer. The outcome
    counts every upload labelled (the selected ones and the other uploads of the same pictures), those left
    waiting for a second reviewer, and the disputed ones it left alone (:class:`ReviewDisputed`)."""
    if label not in Label.values:
        raise ValueError(f"Unknown label {label!r}.")
    selected: set[int] = set()
    labelled: set[int] = set()
    disputed = 0
    for upload in uploads.order_by("pk"):
        selected.add(upload.pk)
        try:
            decided = upload_group_review(upload=upload, decision=label, reviewer=reviewer)
        except ReviewDisputed:
            disputed += 1
            continue
        except UploadNotFound:
            selected.discard(upload.pk)  # deleted meanwhile by its owner (or retention): nothing to label
            continue
        labelled.update(prior.upload_id for prior in decided)
    waiting = Upload.objects.filter(pk__in=labelled, second_review=SecondReview.WAITING).count()
    return ReviewOutcome(labelled=frozenset(labelled), selected=len(selected), waiting=waiting, disputed=disputed)


def uploads_review_restore(*, prior: list[PriorReview], reviewer: AbstractBaseUser) -> int:
    """Undo a decision: put back what each upload held before it. Only labels this reviewer set are touched, so
    an undo never erases a later decision by someone else. Returns how many were restored."""
    restored = 0
    with transaction.atomic():
        # Every row first, in id order as a decision locks them (:func:`_picture_lock`): updated one by one in the
        # order they were recorded (newest first), an undo and another reviewer's decision on the same picture at
        # once each held a row the other waited for, and PostgreSQL failed one of them (a 503).
        uploads_lock(ids=[before.upload_id for before in prior])
        for before in prior:
            reviewed_at = datetime.fromisoformat(before.reviewed_at) if before.reviewed_at else None
            extra = {name: value for name, value in before.extra.items() if name in _EXTRA_FIELDS}
            mine = Q(reviewed_by=reviewer) | Q(second_reviewed_by=reviewer)
            # A second opinion another reviewer gave since (on this reviewer's first review) stands.
            answered_since = Q(second_reviewed_by__isnull=False) & ~Q(second_reviewed_by=reviewer)
            restored += (
                Upload.objects.filter(mine, pk=before.upload_id)
                .exclude(answered_since)
                .update(
                    reviewed_label=before.label, reviewed_by_id=before.reviewer_id, reviewed_at=reviewed_at, **extra
                )
            )
    logger.info("review undone", extra={"count": restored, "reviewer_id": reviewer.pk})
    return restored

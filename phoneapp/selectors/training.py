"""Reading which reviewed pictures train, which measure, and how much reviewers agree.

Three disjoint sets, one picture (sha256) each however often it was sent:

- **ground truth**: a staff-confirmed label (``ground_truth_label``); scores every version, never trains;
- **eval**: reviewed pictures whose stable split is ``eval``; scores every version, never trains;
- **train**: reviewed pictures whose split is ``train``.

A review waiting for a second reviewer, or one a second reviewer disagreed with, is in none of them: a label two
people do not share is not evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import F, QuerySet

from phoneapp.models import ReviewSplit, SecondReview, Upload


def _one_per_picture(uploads: QuerySet[Upload]) -> list[Upload]:
    seen: set[str] = set()
    kept = []
    for upload in uploads.order_by("pk"):
        if upload.sha256 not in seen:
            seen.add(upload.sha256)
            kept.append(upload)
    return kept


def _ground_truth_hashes() -> QuerySet[Upload, Mapping[str, object]]:
    return Upload.objects.exclude(ground_truth_label="").values("sha256")


def ground_truth_uploads() -> list[Upload]:
    """One upload per ground-truth picture (its ``ground_truth_label`` is the truth), oldest first."""
    return _one_per_picture(Upload.objects.exclude(ground_truth_label=""))


def _reviewed_in(split: str) -> QuerySet[Upload]:
    return (
        Upload.objects.reviewed().label_settled().filter(review_split=split).exclude(sha256__in=_ground_truth_hashes())
    )


def eval_uploads() -> list[Upload]:
    """One upload per reviewed eval-split picture that is not ground truth and whose label is settled."""
    return _one_per_picture(_reviewed_in(ReviewSplit.EVAL))


def trusted_labelled_uploads() -> dict[str, list[tuple[Upload, str]]]:
    """The pictures every version is scored on and none trains on, each with its trusted label: ``ground_truth``
    (staff's ``ground_truth_label``) and ``eval`` (the settled ``reviewed_label``). Shared by the retrain's
    scoring and ``manage.py evaluate``."""
    return {
        "ground_truth": [(upload, upload.ground_truth_label) for upload in ground_truth_uploads()],
        "eval": [(upload, upload.reviewed_label) for upload in eval_uploads()],
    }


def training_uploads() -> list[Upload]:
    """One upload per reviewed train-split picture that is not ground truth and whose label is settled."""
    return _one_per_picture(_reviewed_in(ReviewSplit.TRAIN))


def uploads_held_for_second_review_count() -> int:
    """Reviewed pictures kept out of training because a second reviewer has not agreed (waiting or disagreed) and
    staff have not settled (a ground-truth picture is settled: it never trains, and counted here it read as a
    dispute still open)."""
    held = Upload.objects.reviewed().held_for_second_review().exclude(sha256__in=_ground_truth_hashes())
    return held.values("sha256").distinct().count()


@dataclass(frozen=True)
class ReviewAgreement:
    """How often reviewers agree with each other and with ground truth (pictures, not uploads)."""

    second_reviews: int
    agreed: int
    waiting: int
    disputed: int  # pictures two reviewers disagree on and staff have not settled as ground truth yet
    # Ground-truth pictures that also have a label from a reviewer other than whoever set the ground truth.
    ground_truth_reviewed: int
    agreed_with_ground_truth: int


def review_agreement() -> ReviewAgreement:
    """Agreement between first and second reviewers, and between reviewers and ground truth.

    A review made by whoever set the picture's ground truth is left out of the latter: a decision made ground truth
    in the queue (G) is both at once, so it agreed by construction and the figure read 100% whatever the
    reviewers' quality."""
    second = _one_per_picture(Upload.objects.filter(second_review__in=[SecondReview.AGREED, SecondReview.DISAGREED]))
    truth = _one_per_picture(
        Upload.objects.exclude(ground_truth_label="").reviewed().exclude(reviewed_by=F("ground_truth_by"))
    )
    return ReviewAgreement(
        second_reviews=len(second),
        agreed=sum(upload.second_review == SecondReview.AGREED for upload in second),
        waiting=_open_pictures(SecondReview.WAITING),
        disputed=_open_pictures(SecondReview.DISAGREED),
        ground_truth_reviewed=len(truth),
        agreed_with_ground_truth=sum(upload.reviewed_label == upload.ground_truth_label for upload in truth),
    )


def _open_pictures(state: SecondReview) -> int:
    """Pictures whose second review is in ``state`` and not settled: ground truth settles a picture (staff decided
    it, so no second reviewer, and no one else, is awaited)."""
    in_state = Upload.objects.filter(second_review=state).exclude(sha256__in=_ground_truth_hashes())
    return in_state.values("sha256").distinct().count()


@dataclass(frozen=True)
class TrustedScore:
    correct: int
    count: int
    accuracy: float
    pictures: str  # a letter per distinct picture set on the page: same letter, same pictures


@dataclass(frozen=True)
class VersionHistoryRow:
    """One model version's latest scores on the trusted pictures (None when it was never scored)."""

    name: str
    is_active: bool
    created: object
    ground_truth: TrustedScore | None
    eval: TrustedScore | None


def version_score_history() -> list[VersionHistoryRow]:
    """Every scored version, newest first, with its latest ground-truth and eval scores (slice "all"); the
    ``pictures`` letter tells which rows were scored on the same pictures."""
    from phoneapp.models import ModelVersion, VersionScore

    latest: dict[tuple[int, str], VersionScore] = {}
    for score in VersionScore.objects.filter(slice="all").order_by("created", "pk"):
        latest[(score.version_id, score.picture_set)] = score
    letters: dict[str, str] = {}

    def trusted(score: VersionScore | None) -> TrustedScore | None:
        if score is None:
            return None
        letter = letters.setdefault(score.pictures_digest, chr(ord("A") + len(letters) % 26))
        return TrustedScore(score.correct, score.count, score.accuracy, letter)

    scored = {version_id for version_id, _ in latest}
    return [
        VersionHistoryRow(
            name=version.name,
            is_active=version.is_active,
            created=version.created,
            ground_truth=trusted(latest.get((version.pk, VersionScore.Set.GROUND_TRUTH))),
            eval=trusted(latest.get((version.pk, VersionScore.Set.EVAL))),
        )
        for version in ModelVersion.objects.filter(pk__in=scored).order_by("-created")
    ]

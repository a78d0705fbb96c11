"""Reading the numbers behind the staff dashboard: volume, verdicts, and how often reviewers agreed with the model.

Every figure is computed in the database (grouped counts), so the page stays fast with many uploads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, IntegerField, Q
from django.db.models.functions import Cast, Floor, Least, TruncDate
from django.utils import timezone

from phoneapp.models import Label, ModelVersion, Upload, UploadQuerySet, UploadStatus, Verdict
from phoneapp.selectors.model_versions import model_version_active_or_none

HISTOGRAM_BINS = 20


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class VerdictSplit:
    """Done uploads by what the model said (unsure = inside the unsure band of the version that judged it), and the
    rest."""

    phone: int = 0
    not_phone: int = 0
    unsure: int = 0
    waiting: int = 0  # pending or processing
    failed: int = 0

    @property
    def done(self) -> int:
        return self.phone + self.not_phone + self.unsure


@dataclass(frozen=True)
class ModelAccuracy:
    """Reviewed pictures of one model version, how many of its verdicts the reviewers kept, and how many it gave as
    unsure (never kept: the pages told the user it could not tell)."""

    model_version: str
    reviewed: int
    correct: int
    unsure: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.reviewed if self.reviewed else 0.0

    @property
    def label(self) -> str:
        """The chart's name for the row, "scene-lite0-v10 (9 unsure)": a share lowered by unsure verdicts says why
        (above the bar, where there is room; the caption after it is narrow)."""
        return f"{self.model_version} ({self.unsure} unsure)" if self.unsure else self.model_version


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of reviewed pictures by (reviewer's label, model's verdict: phone, unsure or not phone); without a
    version filter, a picture two versions judged differently counts once under each verdict."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, actual: str, predicted: str) -> int:
        return self.counts.get((actual, predicted), 0)

    @property
    def table(self) -> list[tuple[str, list[int]]]:
        """The dashboard's "Numbers": per reviewer's label, the counts under phone, unsure and not phone."""
        verdicts = (Verdict.PHONE, Verdict.UNSURE, Verdict.NOT_PHONE)
        return [(label.label, [self.count(label, verdict) for verdict in verdicts]) for label in Label]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ReviewerCount:
    """How many pictures one reviewer has labelled (in all, and in the last 7 days)."""

    reviewer: str
    total: int
    last_week: int


@dataclass(frozen=True)
class DashboardData:
    days: list[DayCount]
    split: VerdictSplit
    accuracy: list[ModelAccuracy]
    confusion: ConfusionMatrix
    histogram: list[int]  # HISTOGRAM_BINS counts of done uploads' probabilities, from 0 to 1
    model_versions: list[str]
    model_version: str  # the version the confusion matrix is restricted to ("" = all)
    active_version: ModelVersion | None = None  # whose threshold and unsure band the histogram marks
    reviewers: list[ReviewerCount] = field(default_factory=list)
    # A version asked for (``?model=``) without settled reviews: the matrix shows all versions instead, and says so.
    model_version_ignored: str = ""


def uploads_per_day(*, days: int = 30, today: date | None = None) -> list[DayCount]:
    """Uploads created on each of the last ``days`` days (today included), zeros for empty days."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    rows = (
        Upload.objects.filter(created__gte=start)
        .annotate(day=TruncDate("created"))
        .values("day")
        .annotate(count=Count("id"))
    )
    counts = {row["day"]: row["count"] for row in rows}
    every_day = [first + timedelta(days=offset) for offset in range(days)]
    return [DayCount(day=day, count=counts.get(day, 0)) for day in every_day]


def verdict_split() -> VerdictSplit:
    """One grouped count by the word the pages show (the status while there is no verdict)."""
    # The ignore: "verdict" is with_verdict()'s annotation, which the django-stubs plugin cannot follow out of a
    # custom QuerySet method.
    rows = Upload.objects.with_verdict().order_by().values("verdict").annotate(count=Count("id"))  # type: ignore[misc]
    counts = {row["verdict"]: row["count"] for row in rows}
    return VerdictSplit(
        phone=counts.get(Label.PHONE, 0),
        not_phone=counts.get(Label.NOT_PHONE, 0),
        unsure=counts.get("unsure", 0),
        waiting=counts.get(UploadStatus.PENDING, 0) + counts.get(UploadStatus.PROCESSING, 0),
        failed=counts.get(UploadStatus.FAILED, 0),
    )


# A picture sent several times is one decision (one review labels every copy): the dashboard counts pictures.
PICTURES = Count("sha256", distinct=True)


def _reviewed() -> UploadQuerySet:
    """Classified uploads whose reviewed label is settled (a label still waiting for, or contradicted by, a second
    reviewer is not yet what the picture is; a done upload always has the model's label too)."""
    return Upload.objects.done().reviewed().label_settled()


def reviewed_accuracy_by_model() -> list[ModelAccuracy]:
    """Per model version: reviewed pictures, how many verdicts as the pages showed them the reviewer agreed with,
    and how many were unsure, by version name. The model's label behind an unsure verdict is no verdict kept: our
    first retrain's dashboard said 79 of 80 right (99%) beside a confusion matrix with 9 of them unsure."""
    rows = (
        _reviewed()
        .filter(model_version__isnull=False)
        .with_verdict()
        .values("model_version__name")
        .annotate(
            reviewed=PICTURES,
            correct=Count("sha256", distinct=True, filter=Q(verdict=F("reviewed_label"))),
            unsure=Count("sha256", distinct=True, filter=Q(verdict=Verdict.UNSURE)),
        )
        .order_by("model_version__name")
    )
    return [
        ModelAccuracy(
            model_version=row["model_version__name"],
            reviewed=row["reviewed"],
            correct=row["correct"],
            unsure=row["unsure"],
        )
        for row in rows
    ]


def confusion_matrix(*, model_version: str = "") -> ConfusionMatrix:
    """Reviewed pictures by (truth, verdict as the pages showed it: phone, unsure or not phone), optionally of one
    model version only. An unsure verdict is its own column: counting it by the side of the threshold it fell on
    would call right or wrong what the pages told the user the model could not tell."""
    reviewed = _reviewed()
    if model_version:
        reviewed = reviewed.filter(model_version__name=model_version)
    # The ignore: as in verdict_split.
    rows = reviewed.with_verdict().values("reviewed_label", "verdict").annotate(count=PICTURES)  # type: ignore[misc]
    return ConfusionMatrix(counts={(row["reviewed_label"], row["verdict"]): row["count"] for row in rows})


def probability_histogram(*, bins: int = HISTOGRAM_BINS) -> list[int]:
    """How many done uploads fall in each of ``bins`` equal slices of [0, 1] (1.0 goes in the last)."""
    rows = (
        Upload.objects.done()
        .annotate(bucket=Least(Cast(Floor(F("probability") * bins), IntegerField()), bins - 1))
        .values("bucket")
        .annotate(count=Count("id"))
    )
    counts = [0] * bins
    for row in rows:
        counts[max(0, min(bins - 1, int(row["bucket"])))] += row["count"]
    return counts


def dashboard_data(*, days: int = 30, model_version: str = "") -> DashboardData:
    """Everything the dashboard shows; an unknown ``model_version`` filter is ignored (it comes from the URL)."""
    accuracy = reviewed_accuracy_by_model()
    versions = [row.model_version for row in accuracy]
    chosen = model_version if model_version in versions else ""
    return DashboardData(
        days=uploads_per_day(days=days),
        split=verdict_split(),
        accuracy=accuracy,
        confusion=confusion_matrix(model_version=chosen),
        histogram=probability_histogram(),
        model_versions=versions,
        model_version=chosen,
        active_version=model_version_active_or_none(),
        reviewers=reviewer_counts(),
        model_version_ignored=model_version if model_version and not chosen else "",
    )


def reviewer_counts() -> list[ReviewerCount]:
    """Pictures reviewed per reviewer (their decisions, settled or not), most active first (the reviewer's current
    label is what counts)."""
    week_ago = timezone.now() - timedelta(days=7)
    rows = (
        Upload.objects.reviewed()
        .filter(reviewed_by__isnull=False)
        .values("reviewed_by__username")
        .annotate(total=PICTURES, last_week=Count("sha256", distinct=True, filter=Q(reviewed_at__gte=week_ago)))
        .order_by("-total", "reviewed_by__username")
    )
    return [
        ReviewerCount(reviewer=row["reviewed_by__username"], total=row["total"], last_week=row["last_week"])
        for row in rows
    ]

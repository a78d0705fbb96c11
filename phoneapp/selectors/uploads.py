"""Reading uploads: what a user may see, filtered as the history page and the API ask."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth.models import User
from django.db.models import Count, Max, Q
from django.utils import timezone

from phoneapp.errors import UploadNotFound
from phoneapp.models import HAS_VERDICT, UNSETTLED_REVIEWS, Label, Upload, UploadQuerySet, UploadStatus, Verdict
from phoneapp.selectors.decisions import upload_decision_rule, upload_has_verdict, upload_verdict

VERDICTS = tuple(Verdict.values)


# Dates from editable URLs are clamped to these, so a filter's day bounds (the day after ``to``, a day start made
# aware in the site's time zone) never overflow ``datetime``: ?to=9999-12-31 means "no end", not a 500.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(9998, 12, 31)


def _parse_date(raw: str) -> date | None:
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return None
    return min(max(day, EARLIEST_DAY), LATEST_DAY)


@dataclass(frozen=True)
class UnreadableFilter:
    """A filter value :class:`UploadFilters` cannot read: its name, the value sent and what it takes instead."""

    key: str
    value: str
    takes: str

    def __str__(self) -> str:
        return f"{self.key} “{self.value}” ({self.takes})"


@dataclass(frozen=True)
class UploadFilters:
    """Filters of the history page, its CSV export and the API; empty values mean "any"."""

    label: str = ""  # phone / not_phone (the final label: ground truth, else a settled review, else the model's)
    status: str = ""  # pending / processing / done / failed
    reviewed: str = ""  # yes / no
    verdict: str = ""  # phone / not_phone / unsure: what the model said, as the pages show it
    name: str = ""  # part of the original file name, any case
    date_from: date | None = None  # upload day, inclusive, in the site's time zone
    date_to: date | None = None

    @property
    def active(self) -> int:
        """How many filters are set (the page says so, and keeps them in view on a phone)."""
        values = (self.label, self.status, self.reviewed, self.verdict, self.name, self.date_from, self.date_to)
        return sum(1 for value in values if value)

    @classmethod
    def from_query(cls, query: dict[str, str]) -> UploadFilters:
        """Values it cannot read are left out (:meth:`unreadable` names them: the page says they were ignored, the
        API refuses the request)."""
        label = query.get("label", "")
        status = query.get("status", "")
        reviewed = query.get("reviewed", "")
        verdict = query.get("verdict", "")
        return cls(
            label=label if label in Label.values else "",
            status=status if status in UploadStatus.values else "",
            reviewed=reviewed if reviewed in ("yes", "no") else "",
            verdict=verdict if verdict in VERDICTS else "",
            name=query.get("q", "").strip()[:100],
            date_from=_parse_date(query.get("from", "")),
            date_to=_parse_date(query.get("to", "")),
        )

    @staticmethod
    def unreadable(query: dict[str, str]) -> list[UnreadableFilter]:
        """The filter values :meth:`from_query` cannot read and would ignore (one it does not know, a date it cannot
        read), each with what it takes: the page says they were ignored; the API refuses the request, since a
        script given the whole list for a filter it got wrong acts on the wrong uploads."""
        allowed = {
            "label": Label.values,
            "status": UploadStatus.values,
            "reviewed": ["yes", "no"],
            "verdict": list(VERDICTS),
        }
        problems = [
            UnreadableFilter(key, query[key], f"use {', '.join(choices)}")
            for key, choices in allowed.items()
            if query.get(key, "") and query[key] not in choices
        ]
        for key in ("from", "to"):
            if query.get(key, "").strip() and _parse_date(query[key]) is None:
                problems.append(UnreadableFilter(key, query[key], "not a date: use YYYY-MM-DD"))
        return problems

    @staticmethod
    def notes_on(query: dict[str, str]) -> list[str]:
        """What the page should say about the filters asked for: values :meth:`from_query` ignored and a "from"
        after "to" (applied, and nothing can match), so a filter that shows nothing or everything is never
        silent."""
        notes = [f"{bad.key} “{bad.value}” was ignored ({bad.takes})" for bad in UploadFilters.unreadable(query)]
        day_from, day_to = _parse_date(query.get("from", "")), _parse_date(query.get("to", ""))
        if day_from and day_to and day_from > day_to:
            notes.append(f"from {day_from} is after to {day_to}: no upload can match")
        return notes


NUL = "\x00"


def upload_list(*, owner: User, filters: UploadFilters | None = None) -> UploadQuerySet:
    """The owner's uploads, newest first."""
    queryset = Upload.objects.owned_by(owner).select_related("model_version")
    filters = filters or UploadFilters()
    if filters.label:
        queryset = _with_final_label(queryset, filters.label)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.reviewed == "yes":
        queryset = queryset.reviewed()
    elif filters.reviewed == "no":
        queryset = queryset.unreviewed()
    if filters.verdict:
        # Each upload judged by its own model version's unsure band, as the pages show it.
        # The ignore: "verdict" is with_verdict()'s annotation, which the django-stubs plugin cannot follow out of a
        # custom QuerySet method.
        queryset = queryset.with_verdict().filter(verdict=filters.verdict)  # type: ignore[misc]
    if NUL in filters.name:
        # No stored name holds NUL (PostgreSQL text cannot, and Django drops unprintable characters from the names
        # of uploaded files), so nothing matches; asked of PostgreSQL, the search was a 500 (psycopg's DataError).
        queryset = queryset.none()
    elif filters.name:
        queryset = queryset.filter(original_name__icontains=filters.name)
    if filters.date_from:
        queryset = queryset.filter(created__gte=_day_start(filters.date_from))
    if filters.date_to:
        queryset = queryset.filter(created__lt=_day_start(filters.date_to + timedelta(days=1)))
    return queryset.order_by("-created", "-id")


# The columns of the history's export, in the order of :func:`uploads_export_rows`' cells.
UPLOAD_EXPORT_COLUMNS = [
    "id",
    "original_name",
    "created",
    "status",
    "verdict",
    "probability",
    "threshold",
    "model_version",
    "reviewed_label",
    "width",
    "height",
    "size_bytes",
    "boxes",  # where the phones are, as the API gives them: [{"box": [x1, y1, x2, y2], "score": s}, ...]
]

ExportCell = str | int | None


def uploads_export_rows(*, owner: User, filters: UploadFilters | None = None) -> Iterator[list[ExportCell]]:
    """The owner's uploads that :func:`upload_list` finds, one row of :data:`UPLOAD_EXPORT_COLUMNS` each, for a
    spreadsheet: read 500 rows at a time, so a long history costs no memory; the verdict's figures (probability,
    threshold, boxes) only where there is a verdict (:func:`upload_has_verdict`), judged by the upload's own
    version. The uploads are chosen now; the rows are read as the caller iterates."""
    uploads = upload_list(owner=owner, filters=filters)

    def rows() -> Iterator[list[ExportCell]]:
        for upload in uploads.iterator(chunk_size=500):
            judged = upload_has_verdict(upload=upload)
            yield [
                upload.pk,
                _spreadsheet_safe(upload.original_name),
                timezone.localtime(upload.created).isoformat(timespec="seconds"),
                upload.status,
                upload_verdict(upload=upload) or "",
                f"{upload.probability:.4f}" if judged else "",
                f"{upload_decision_rule(upload=upload).threshold:.4f}" if judged else "",
                upload.model_version.name if upload.model_version else "",
                upload.reviewed_label,
                upload.width,
                upload.height,
                upload.size_bytes,
                json.dumps(upload.predicted_boxes or []) if judged else "",
            ]

    return rows()


def _spreadsheet_safe(text: str) -> str:
    """A file name that a spreadsheet would run as a formula ("=HYPERLINK(...)") is prefixed with a quote."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _with_final_label(queryset: UploadQuerySet, label: str) -> UploadQuerySet:
    """:func:`phoneapp.selectors.decisions.upload_final_label` in SQL: ground truth, else a settled review, else
    the model's label."""
    no_truth = Q(ground_truth_label="")
    settled_review = ~Q(reviewed_label="") & ~Q(second_review__in=UNSETTLED_REVIEWS)
    return queryset.filter(
        Q(ground_truth_label=label)
        | (no_truth & settled_review & Q(reviewed_label=label))
        | (no_truth & ~settled_review & HAS_VERDICT & Q(predicted_label=label))
    )


def upload_get(*, owner: User, upload_id: int) -> Upload:
    """One of the owner's uploads; another user's upload is indistinguishable from a missing one: both raise
    :class:`UploadNotFound`."""
    try:
        return Upload.objects.owned_by(owner).select_related("model_version").get(pk=upload_id)
    except Upload.DoesNotExist as error:
        raise UploadNotFound("No such upload.") from error


def upload_get_for_viewer(*, viewer: User, upload_id: int) -> Upload:
    """An upload whose picture ``viewer`` may see: their own, or anyone's for staff (they review them in the
    admin); else :class:`UploadNotFound`."""
    if not getattr(viewer, "is_staff", False):
        return upload_get(owner=viewer, upload_id=upload_id)
    try:
        return Upload.objects.select_related("model_version").get(pk=upload_id)
    except Upload.DoesNotExist as error:
        raise UploadNotFound("No such upload.") from error


def uploads_get_many(*, owner: User, upload_ids: list[int]) -> list[Upload]:
    """The owner's uploads among ``upload_ids`` (others silently left out), in the order asked."""
    rows = Upload.objects.owned_by(owner).filter(pk__in=upload_ids).select_related("model_version")
    found = {upload.pk: upload for upload in rows}
    return [found[upload_id] for upload_id in upload_ids if upload_id in found]


def uploads_recent(*, owner: User, limit: int = 12) -> list[Upload]:
    """The owner's latest uploads, newest first: what the upload page shows again after a reload."""
    return list(Upload.objects.owned_by(owner).select_related("model_version").order_by("-created", "-id")[:limit])


@dataclass(frozen=True)
class OwnUploadsSummary:
    """What a person has stored: how many uploads, and the newest one's id (None when there are none)."""

    count: int
    newest_id: int | None


def uploads_summary(*, owner: User) -> OwnUploadsSummary:
    """How many uploads ``owner`` has and the newest's id, in one query (the "delete all my pictures" page)."""
    found = Upload.objects.filter(owner=owner).aggregate(count=Count("pk"), newest_id=Max("pk"))
    return OwnUploadsSummary(count=found["count"], newest_id=found["newest_id"])

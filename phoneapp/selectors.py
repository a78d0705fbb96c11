"""Reading uploads: what a user may see, filtered as the history page and the API ask."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from phoneapp.models import Label, Upload, UploadStatus


@dataclass(frozen=True)
class UploadFilters:
    """Filters of the history page and the API; empty strings mean "any"."""

    label: str = ""  # phone / not_phone (the final label: reviewer's if any, else model's)
    status: str = ""  # pending / processing / done / failed
    reviewed: str = ""  # yes / no

    @classmethod
    def from_query(cls, query: dict[str, str]) -> UploadFilters:
        """Unknown values are ignored rather than answered with an error: they come from editable URLs."""
        label = query.get("label", "")
        status = query.get("status", "")
        reviewed = query.get("reviewed", "")
        return cls(
            label=label if label in Label.values else "",
            status=status if status in UploadStatus.values else "",
            reviewed=reviewed if reviewed in ("yes", "no") else "",
        )


def upload_list(*, owner: AbstractBaseUser, filters: UploadFilters | None = None) -> QuerySet[Upload]:
    """The owner's uploads, newest first."""
    queryset = Upload.objects.filter(owner=owner).select_related("model_version")
    filters = filters or UploadFilters()
    if filters.label:
        queryset = _with_final_label(queryset, filters.label)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.reviewed == "yes":
        queryset = queryset.exclude(reviewed_label="")
    elif filters.reviewed == "no":
        queryset = queryset.filter(reviewed_label="")
    return queryset.order_by("-created", "-id")


def _with_final_label(queryset: QuerySet[Upload], label: str) -> QuerySet[Upload]:
    reviewed_as = queryset.filter(reviewed_label=label)
    predicted_as = queryset.filter(reviewed_label="", predicted_label=label)
    return reviewed_as | predicted_as


def upload_get(*, owner: AbstractBaseUser, upload_id: int) -> Upload:
    """One of the owner's uploads; another user's upload is indistinguishable from a missing one (404)."""
    try:
        return Upload.objects.select_related("model_version").get(pk=upload_id, owner=owner)
    except Upload.DoesNotExist as error:
        raise Http404("No such upload.") from error


def uploads_get_many(*, owner: AbstractBaseUser, upload_ids: list[int]) -> list[Upload]:
    """The owner's uploads among ``upload_ids`` (others silently left out), in the order asked."""
    found = {upload.pk: upload for upload in Upload.objects.filter(owner=owner, pk__in=upload_ids)}
    return [found[upload_id] for upload_id in upload_ids if upload_id in found]

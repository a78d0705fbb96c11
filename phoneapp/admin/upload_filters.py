"""The upload list's filters that find what needs a look: not yet reviewed, unsure, the model against its reviewer."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest

from phoneapp.models import UploadQuerySet, Verdict


def _uploads(queryset: QuerySet[Any]) -> UploadQuerySet:
    """A list filter's queryset: the changelist's, from ``Upload.objects`` (``UploadQuerySet.as_manager()``), so
    it speaks the upload vocabulary; Django's hook only promises a ``QuerySet``."""
    if not isinstance(queryset, UploadQuerySet):
        raise TypeError(f"expected the uploads' queryset, got {type(queryset).__name__}")
    return queryset


class ReviewedFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "reviewed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("no", "Not yet reviewed"), ("yes", "Reviewed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "no":
            return _uploads(queryset).unreviewed()
        if self.value() == "yes":
            return _uploads(queryset).reviewed()
        return queryset


class ConfidenceFilter(admin.SimpleListFilter):
    """Unsure = inside the unsure band of the model version that judged the upload (the pages' "Unsure"); a guessed
    place = a confident phone verdict whose best box scores under 50% (drawn dashed; the review queue's next
    priority after the unsure band)."""

    title = "confidence"
    parameter_name = "confidence"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            (Verdict.UNSURE, "Low confidence (inside its model's unsure band)"),
            ("confident", "Confident"),
            ("place-unsure", "Phone, but the box is a guess (under 50%)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == Verdict.UNSURE:
            return _uploads(queryset).unsure()
        if self.value() == "place-unsure":
            return _uploads(queryset).place_unsure()
        if self.value() == "confident":
            return _uploads(queryset).confident()
        return queryset


class DisagreementFilter(admin.SimpleListFilter):
    title = "model vs reviewer"
    parameter_name = "agreement"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("disagree", "Model disagreed with reviewer"), ("agree", "Model agreed with reviewer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        reviewed = _uploads(queryset).reviewed().exclude(predicted_label="")
        if self.value() == "disagree":
            return reviewed.exclude(reviewed_label=F("predicted_label"))
        if self.value() == "agree":
            return reviewed.filter(reviewed_label=F("predicted_label"))
        return queryset

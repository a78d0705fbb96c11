"""Review tools in the Django admin: filters that find what needs a look, and bulk review actions."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from phoneapp.models import Label, ModelVersion, Upload
from phoneapp.services.model_versions import model_version_activate
from phoneapp.services.reviews import uploads_confirm_predictions, uploads_set_reviewed_label
from phoneapp.services.upload_deletion import upload_delete, uploads_delete


class ReviewedFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "reviewed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("no", "Not yet reviewed"), ("yes", "Reviewed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Upload]) -> QuerySet[Upload]:
        if self.value() == "no":
            return queryset.filter(reviewed_label="")
        if self.value() == "yes":
            return queryset.exclude(reviewed_label="")
        return queryset


class ConfidenceFilter(admin.SimpleListFilter):
    title = "confidence"
    parameter_name = "confidence"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        low, high = settings.UNSURE_BAND
        return [
            ("unsure", f"Low confidence ({low:.0%}–{high:.0%} phone)"),
            ("confident", "Confident"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Upload]) -> QuerySet[Upload]:
        low, high = settings.UNSURE_BAND
        if self.value() == "unsure":
            return queryset.filter(probability__gte=low, probability__lte=high)
        if self.value() == "confident":
            return queryset.exclude(probability__gte=low, probability__lte=high).exclude(probability=None)
        return queryset


class DisagreementFilter(admin.SimpleListFilter):
    title = "model vs reviewer"
    parameter_name = "agreement"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("disagree", "Model disagreed with reviewer"), ("agree", "Model agreed with reviewer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Upload]) -> QuerySet[Upload]:
        reviewed = queryset.exclude(reviewed_label="").exclude(predicted_label="")
        if self.value() == "disagree":
            return reviewed.exclude(reviewed_label=F("predicted_label"))
        if self.value() == "agree":
            return reviewed.filter(reviewed_label=F("predicted_label"))
        return queryset


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "thumbnail_tag",
        "original_name",
        "owner",
        "status",
        "predicted_label",
        "probability_display",
        "reviewed_label",
        "model_version",
        "created",
    ]
    list_display_links = ["id", "original_name"]
    list_filter = [
        "predicted_label",
        ReviewedFilter,
        ConfidenceFilter,
        DisagreementFilter,
        "status",
        "model_version",
        "reviewed_label",
    ]
    search_fields = ["original_name", "sha256"]
    list_select_related = ["owner", "model_version"]
    list_per_page = 50
    actions = ["confirm_model_verdict", "mark_as_phone", "mark_as_not_phone"]
    readonly_fields = [
        "thumbnail_tag",
        "owner",
        "original_name",
        "sha256",
        "size_bytes",
        "width",
        "height",
        "content_type",
        "created",
        "status",
        "error",
        "attempts",
        "predicted_label",
        "probability",
        "model_version",
        "processed",
        "inference_ms",
        "reviewed_by",
        "reviewed_at",
    ]
    fields = [*readonly_fields[:13], "reviewed_label", *readonly_fields[13:]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads come from users, through the upload service

    @admin.display(description="picture")
    def thumbnail_tag(self, upload: Upload) -> str:
        url = reverse("upload-thumbnail", args=[upload.pk])
        return format_html('<img src="{}" alt="" style="max-height:64px;max-width:96px" loading="lazy">', url)

    @admin.display(description="P(phone)", ordering="probability")
    def probability_display(self, upload: Upload) -> str:
        return "—" if upload.probability is None else f"{upload.probability:.1%}"

    def save_model(self, request: HttpRequest, obj: Upload, form: object, change: bool) -> None:
        # Editing the reviewed label by hand records who and when, exactly like the bulk actions.
        if obj.reviewed_label:
            uploads_set_reviewed_label(
                uploads=Upload.objects.filter(pk=obj.pk), label=obj.reviewed_label, reviewer=request.user
            )
        else:
            Upload.objects.filter(pk=obj.pk).update(reviewed_label="", reviewed_by=None, reviewed_at=None)

    def delete_model(self, request: HttpRequest, obj: Upload) -> None:
        # The files go with the row (unless a duplicate upload still shows them), as from the page and the API.
        upload_delete(upload=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        uploads_delete(uploads=queryset)

    @admin.action(description="Confirm model verdict")
    def confirm_model_verdict(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        count = uploads_confirm_predictions(uploads=queryset, reviewer=request.user)
        self.message_user(request, f"Confirmed the model's verdict on {count} upload(s).", messages.SUCCESS)

    @admin.action(description="Mark as phone")
    def mark_as_phone(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        count = uploads_set_reviewed_label(uploads=queryset, label=Label.PHONE, reviewer=request.user)
        self.message_user(request, f"Marked {count} upload(s) as phone.", messages.SUCCESS)

    @admin.action(description="Mark as not phone")
    def mark_as_not_phone(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        count = uploads_set_reviewed_label(uploads=queryset, label=Label.NOT_PHONE, reviewer=request.user)
        self.message_user(request, f"Marked {count} upload(s) as not phone.", messages.SUCCESS)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "created", "accuracy", "f1", "roc_auc", "checksum_short"]
    list_filter = ["is_active"]
    readonly_fields = ["name", "path", "checksum", "created", "metrics", "data_summary", "is_active"]
    actions = ["activate_version"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions are registered by `manage.py retrain` or shipped in trained_models/

    @admin.display(description="checksum")
    def checksum_short(self, version: ModelVersion) -> str:
        return version.checksum[:12]

    def _metric(self, version: ModelVersion, name: str) -> str:
        value = version.metrics.get(name) if isinstance(version.metrics, dict) else None
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    @admin.display(description="accuracy")
    def accuracy(self, version: ModelVersion) -> str:
        return self._metric(version, "accuracy")

    @admin.display(description="F1")
    def f1(self, version: ModelVersion) -> str:
        return self._metric(version, "f1")

    @admin.display(description="ROC-AUC")
    def roc_auc(self, version: ModelVersion) -> str:
        return self._metric(version, "roc_auc")

    @admin.action(description="Activate this version (workers switch before their next prediction)")
    def activate_version(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = model_version_activate(version=queryset.get())
        self.message_user(request, f"{version.name} is now the active model.", messages.SUCCESS)

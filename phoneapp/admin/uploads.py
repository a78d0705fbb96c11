"""Review tools in the Django admin: filters that find what needs a look, and bulk review actions."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import User
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from inference.manifest import ModelLoadError
from phoneapp.models import ApiToken, Label, ModelVersion, SecondReview, Upload, UploadQuerySet, Verdict, VersionScore
from phoneapp.selectors.decisions import model_version_decision_rule, upload_verdict
from phoneapp.selectors.model_versions import (
    model_version_compare_with_active,
    model_version_figure_sets,
    model_version_headline_figures,
    model_version_latest_score,
)
from phoneapp.services.api_tokens import api_token_prefix
from phoneapp.services.classification import uploads_retry_failed
from phoneapp.services.ground_truth import uploads_mark_ground_truth, uploads_unmark_ground_truth
from phoneapp.services.model_versions import model_version_activate_if_loadable
from phoneapp.services.reviews import (
    BadBoxes,
    review_boxes_parse,
    upload_set_reviewed_boxes,
    uploads_clear_review,
    uploads_confirm_predictions,
    uploads_review,
)
from phoneapp.services.upload_deletion import upload_delete, uploads_delete
from phoneapp.signed_in import signed_in_user
from phoneapp.templatetags.ui import phone_chance_percent

logger = logging.getLogger(__name__)

# The admin has no navigation sidebar: at 1366 px it took the room the upload list needs beside its filters (the
# breadcrumbs and the admin's index still lead everywhere).
admin.site.enable_nav_sidebar = False


def _uploads(queryset: QuerySet[Any]) -> UploadQuerySet:
    """A list filter's queryset: the changelist's, from ``Upload.objects`` (``UploadQuerySet.as_manager()``), so
    it speaks the upload vocabulary; Django's hook only promises a ``QuerySet``."""
    if not isinstance(queryset, UploadQuerySet):
        raise TypeError(f"expected the uploads' queryset, got {type(queryset).__name__}")
    return queryset


def _cut(text: str, width_class: str) -> SafeString:
    """Text cut to its column's width with an ellipsis (admin.css), whole in its tooltip."""
    return format_html('<span class="cut {}" title="{}">{}</span>', width_class, text, text)


class BoxesJSONField(forms.JSONField):
    """The reviewer's boxes as JSON text; none drawn (null) shows as an empty box, not the word ``null``. Checked
    as the form is: a refused box is said beside the field with the text kept (it was said after saving, beside
    "changed successfully", and the typed text was lost)."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)

    def clean(self, value: Any) -> Any:
        boxes = super().clean(value)
        if boxes is None:
            return None
        try:
            return review_boxes_parse(raw=boxes)
        except BadBoxes as error:
            raise forms.ValidationError(error.message) from error


# The words the admin actions and their messages use for each label ("Marked 3 upload(s) as not phone.").
# Two reviewers disagree on these pictures: relabelling one would settle the dispute unseen (services/reviews.py).
_DISPUTED_LEFT_ALONE = (
    "{count} left as they were: two reviewers disagree on {them}. Settle a disputed picture with "
    "'Ground truth: phone' or 'Ground truth: not phone'."
)

_LABEL_WORDS = {Label.PHONE: "phone", Label.NOT_PHONE: "not phone"}


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


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    # Eight narrow columns: the list fits a 1366 px window beside the filters without scrolling sideways (long
    # names, owners and version names are cut with an ellipsis, whole in their tooltip; see admin.css). What a
    # reviewer opens it for comes first: on a 390 px phone the verdict and review began off-screen, behind the
    # owner and status, in a list that scrolls sideways.
    list_display = [
        "thumbnail_tag",
        "name_display",
        "verdict_display",
        "review_display",
        "status",
        "owner_display",
        "version_display",
        "created_display",
    ]
    list_display_links = ["thumbnail_tag", "name_display"]
    date_hierarchy = "created"
    list_filter = [
        "predicted_label",
        ReviewedFilter,
        ConfidenceFilter,
        DisagreementFilter,
        "status",
        "model_version",
        "reviewed_label",
        "ground_truth_label",
        "second_review",
        "review_split",
    ]
    search_fields = ["original_name", "sha256", "owner__username", "owner__email"]
    list_select_related = ["owner", "model_version"]
    list_per_page = 50
    actions = [
        "confirm_model_verdict",
        "mark_as_phone",
        "mark_as_not_phone",
        "confirm_as_ground_truth",
        "ground_truth_phone",
        "ground_truth_not_phone",
        "remove_from_ground_truth",
        "retry_classification",
    ]
    readonly_fields = [
        "picture_full",
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
        # The verdict as the pages show it: the stored predicted_label is only the side of the threshold, so an
        # unsure verdict read as "Phone" here.
        "verdict_display",
        "probability",
        "model_version",
        "processed",
        "inference_ms",
        "reviewed_by",
        "reviewed_at",
        "review_split",
        "second_review",
        "second_label",
        "second_reviewed_by",
        "ground_truth_label",
        "ground_truth_by",
        "ground_truth_at",
    ]
    fields = [*readonly_fields[:13], "reviewed_label", "reviewed_boxes", *readonly_fields[13:]]

    class Media:
        css = {"all": ["phoneapp/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads come from users, through the upload service

    @admin.display(description="picture")
    def thumbnail_tag(self, upload: Upload) -> str:
        url = reverse("upload-thumbnail", args=[upload.pk])
        # The link to the upload's page: its name is the picture's alt text (it was empty, so the link had none).
        return format_html(
            '<img src="{}" alt="Upload {}: {}" class="admin-thumb" height="40" loading="lazy">',
            url,
            upload.pk,
            upload.original_name,
        )

    @admin.display(description="name", ordering="original_name")
    def name_display(self, upload: Upload) -> SafeString:
        return _cut(upload.original_name, "cut-name")

    @admin.display(description="owner", ordering="owner__username")
    def owner_display(self, upload: Upload) -> SafeString:
        return _cut(upload.owner.get_username(), "cut-owner")

    @admin.display(description="review", ordering="reviewed_label")
    def review_display(self, upload: Upload) -> str:
        """The reviewed label, and whether it waits for (or was disputed by) a second reviewer: such a label trains
        nothing yet, which the bare label hid; a ground truth, which settles it, beside it."""
        truth = f"ground truth: {upload.get_ground_truth_label_display()}" if upload.ground_truth_label else ""
        if not upload.reviewed_label:
            return truth.capitalize() if truth else "—"
        unsettled = {SecondReview.WAITING: "waiting for a second reviewer", SecondReview.DISAGREED: "disputed"}
        notes = [note for note in (unsettled.get(SecondReview(upload.second_review)), truth) if note]
        label = upload.get_reviewed_label_display()
        return f"{label} ({'; '.join(notes)})" if notes else label

    @admin.display(description="model version", ordering="model_version__name")
    def version_display(self, upload: Upload) -> SafeString | str:
        return _cut(upload.model_version.name, "cut-version") if upload.model_version else "—"

    @admin.display(description="uploaded", ordering="created")
    def created_display(self, upload: Upload) -> str:
        return timezone.localtime(upload.created).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="verdict", ordering="probability")
    def verdict_display(self, upload: Upload) -> SafeString | str:
        """The word and the chance the pages say ("Unsure — 81%", "Phone — over 99%": "100%" claimed a certainty
        the pages never do), judged by the upload's own model version; on a phone it may take two lines, broken
        between the word and the chance only (admin.css)."""
        if upload.probability is None:
            return "—"
        verdict = upload_verdict(upload=upload)
        word = verdict.label if verdict is not None else "—"
        return format_html(
            '<span class="verdict-part">{}</span> <span class="verdict-part">— {}</span>',
            word,
            phone_chance_percent(upload),
        )

    @admin.display(description="picture")
    def picture_full(self, upload: Upload) -> SafeString:
        """The whole picture with the model's boxes and heat map, and a link to decide on it in the review queue."""
        return render_to_string("admin/phoneapp/upload_picture.html", {"upload": upload})

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "reviewed_boxes":
            kwargs["form_class"] = BoxesJSONField
            kwargs["help_text"] = (
                'Where the phones are: [{"box": [x1, y1, x2, y2]}, ...] as fractions of the picture; empty = none '
                "drawn. To draw with the mouse or keyboard, open the picture in the review queue (link above)."
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Upload, form: Any, change: bool) -> None:
        # Every edit goes through the review services, so it records who and when and is logged, like the queue's.
        if "reviewed_boxes" in form.changed_data:  # checked by BoxesJSONField
            upload_set_reviewed_boxes(upload=obj, boxes=obj.reviewed_boxes, reviewer=signed_in_user(request))
        if "reviewed_label" not in form.changed_data:
            return  # who reviewed it, and when, stay as they were
        this_upload = Upload.objects.filter(pk=obj.pk)
        if obj.reviewed_label:
            outcome = uploads_review(uploads=this_upload, label=obj.reviewed_label, reviewer=signed_in_user(request))
            if outcome.disputed:
                self.message_user(
                    request, _DISPUTED_LEFT_ALONE.format(count="Its label was", them="it"), messages.WARNING
                )
        else:
            uploads_clear_review(uploads=this_upload, reviewer=signed_in_user(request))

    def delete_model(self, request: HttpRequest, obj: Upload) -> None:
        # The files go with the row (unless a duplicate upload still shows them), as from the page and the API.
        upload_delete(upload=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        uploads_delete(uploads=queryset)

    @admin.action(permissions=["change"], description="Confirm model verdict")
    def confirm_model_verdict(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        outcome = uploads_confirm_predictions(uploads=queryset, reviewer=signed_in_user(request))
        left = []
        if outcome.unsure:
            left.append(f"{outcome.unsure} the model is unsure about (choose a label for those)")
        if outcome.not_open:
            left.append(f"{outcome.not_open} not classified yet or already reviewed")
        note = f"; left alone: {', '.join(left)}" if left else ""
        self.message_user(
            request, f"Confirmed the model's verdict on {outcome.confirmed} upload(s){note}.", messages.SUCCESS
        )

    @admin.action(permissions=["change"], description="Mark as phone")
    def mark_as_phone(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        self._mark(request, queryset, label=Label.PHONE)

    @admin.action(permissions=["change"], description="Mark as not phone")
    def mark_as_not_phone(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        self._mark(request, queryset, label=Label.NOT_PHONE)

    def _mark(self, request: HttpRequest, queryset: UploadQuerySet, *, label: Label) -> None:
        """One reviewed label on every selected upload (and, as in the queue, the other uploads of the same
        pictures), and the counts in the words the action's name uses."""
        outcome = uploads_review(uploads=queryset, label=label, reviewer=signed_in_user(request))
        copies = outcome.copies
        also = (
            f" ({copies} other upload{pluralize(copies)} of the same picture{pluralize(outcome.selected)})"
            if copies
            else ""
        )
        waiting = outcome.waiting
        # Against a confident verdict a label waits for a second reviewer (phoneapp/services/reviews.py): say so.
        note = (
            f"; {waiting} against a confident verdict {pluralize(waiting, 'waits,wait')} for a second reviewer "
            "before training"
            if waiting
            else ""
        )
        count = len(outcome.labelled)
        self.message_user(
            request, f"Marked {count} upload{pluralize(count)} as {_LABEL_WORDS[label]}{also}{note}.", messages.SUCCESS
        )
        if outcome.disputed:
            left = f"{outcome.disputed} upload{pluralize(outcome.disputed)}' labels were"
            self.message_user(request, _DISPUTED_LEFT_ALONE.format(count=left, them="them"), messages.WARNING)

    @admin.action(
        permissions=["change"],
        description="Ground truth: confirm the reviewed label (scores every version, never trains)",
    )
    def confirm_as_ground_truth(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        outcome = uploads_mark_ground_truth(uploads=queryset, by=signed_in_user(request))
        count, skipped = outcome.marked, outcome.left_alone
        note = (
            f"; {skipped} upload(s) left alone (unreviewed, or waiting for or disputed by a second reviewer: "
            "use 'Ground truth: phone' or 'Ground truth: not phone' for those)"
            if skipped
            else ""
        )
        self.message_user(
            request,
            f"{count} picture{pluralize(count)} {pluralize(count, 'is,are')} now ground truth{note}.",
            messages.SUCCESS,
        )

    @admin.action(permissions=["change"], description="Ground truth: phone")
    def ground_truth_phone(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        self._ground_truth(request, queryset, label=Label.PHONE)

    @admin.action(permissions=["change"], description="Ground truth: not phone")
    def ground_truth_not_phone(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        self._ground_truth(request, queryset, label=Label.NOT_PHONE)

    def _ground_truth(self, request: HttpRequest, queryset: UploadQuerySet, *, label: Label) -> None:
        """Every selected upload becomes ground truth with ``label``; the message counts them."""
        count = uploads_mark_ground_truth(uploads=queryset, by=signed_in_user(request), label=label).marked
        self.message_user(
            request,
            f"{count} picture{pluralize(count)} {pluralize(count, 'is,are')} now ground truth: {_LABEL_WORDS[label]}.",
            messages.SUCCESS,
        )

    @admin.action(permissions=["change"], description="Retry classification of failed uploads")
    def retry_classification(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        count = uploads_retry_failed(uploads=queryset)
        skipped = queryset.count() - count
        note = f"; {skipped} upload(s) that had not failed left alone" if skipped else ""
        self.message_user(
            request, f"{count} failed upload{pluralize(count)} sent to be classified again{note}.", messages.SUCCESS
        )

    @admin.action(permissions=["change"], description="Remove from ground truth")
    def remove_from_ground_truth(self, request: HttpRequest, queryset: UploadQuerySet) -> None:
        count = uploads_unmark_ground_truth(uploads=queryset)
        self.message_user(request, f"{count} upload{pluralize(count)} removed from ground truth.", messages.SUCCESS)


# Shown and read-only alike (one tuple: both admin options accept it, so the type checker does too).
_SCORE_FIELDS = (
    "created",
    "picture_set",
    "slice",
    "correct",
    "count",
    "accuracy",
    "false_positives",
    "false_negatives",
)


class VersionScoreInline(admin.TabularInline):
    """Each retrain's scores of this version on the trusted pictures (same digest = same pictures)."""

    model = VersionScore
    fields = _SCORE_FIELDS
    readonly_fields = _SCORE_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _latest_score(version: ModelVersion, picture_set: str) -> str:
    score = model_version_latest_score(version=version, picture_set=picture_set)
    return f"{score.correct}/{score.count} ({score.accuracy:.1%})" if score else "—"


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "is_active",
        "created",
        "ground_truth_score",
        "eval_score",
        "accuracy",
        "f1",
        "roc_auc",
        "measured_on",
        "threshold",
        "checksum_short",
    ]
    # No filter sidebar: it took 300 px, which cut the threshold and checksum off at 1280 px, to filter a list of a
    # few versions by "active", which is always the first row: the active version first, then the newest.
    ordering = ["-is_active", "-created", "-id"]
    readonly_fields = [
        "name",
        "path",
        "checksum",
        "created",
        "is_active",
        "decision",
        "retrain_decision",
        "figures",
        "metrics",
    ]
    inlines = [VersionScoreInline]
    exclude = ["data_summary"]
    actions = ["activate_version"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions are registered by `manage.py retrain` or shipped in trained_models/

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        # A row mirrors a folder in MODELS_DIR: deleted here, the next sync registered it again (and a deleted
        # active version quietly gave way to trained_models/ACTIVE, undoing a rollback). Retire a version by
        # removing its folder; activate another with the action.
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Every field is read-only: no Save buttons that save nothing.
        no_saving = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **no_saving})

    @admin.display(description="checksum")
    def checksum_short(self, version: ModelVersion) -> str:
        return version.checksum[:12]

    def _metric(self, version: ModelVersion, name: str) -> str:
        _, figures = model_version_headline_figures(metrics=version.metrics)
        value = figures.get(name)
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    @admin.display(description="threshold")
    def threshold(self, version: ModelVersion) -> str:
        return f"{model_version_decision_rule(version=version).threshold:.3f}"

    @admin.display(description="verdict rule")
    def decision(self, version: ModelVersion) -> str:
        """The rule the pages apply (:meth:`DecisionRule.verdict`): "phone" only above the unsure band, which holds
        the threshold. It read "phone when P(phone) ≥ 0.581; unsure between 0.581 and 1.000" for a retrain whose
        band ends at 0.9995: every picture from 58% to 99.95% is shown Unsure, and its top was rounded to 1."""
        rule = model_version_decision_rule(version=version)
        source = {"manifest": "from the manifest", "derived": "derived from the threshold", "setting": "UNSURE_BAND"}
        return (
            f"phone above {rule.unsure_high:.4f}, not a phone below {rule.unsure_low:.4f}, unsure from "
            f"{rule.unsure_low:.4f} to {rule.unsure_high:.4f} (threshold {rule.threshold:.4f}; band "
            f"{source.get(rule.source, rule.source)})"
        )

    @admin.display(description="ground truth (latest)")
    def ground_truth_score(self, version: ModelVersion) -> str:
        return _latest_score(version, VersionScore.Set.GROUND_TRUTH)

    @admin.display(description="eval split (latest)")
    def eval_score(self, version: ModelVersion) -> str:
        return _latest_score(version, VersionScore.Set.EVAL)

    @admin.display(description="promotion")
    def retrain_decision(self, version: ModelVersion) -> str:
        """The retrain's decision and the rule it applied (empty for shipped versions)."""
        from phoneapp.services.promotion import PROMOTION_RULE

        decision = (version.metrics or {}).get("decision") if isinstance(version.metrics, dict) else None
        return f"{decision} Rule: {PROMOTION_RULE}" if decision else "—"

    @admin.display(description="figures")
    def figures(self, version: ModelVersion) -> SafeString:
        return render_to_string("admin/phoneapp/model_figures.html", {"rows": figure_rows(version.metrics)})

    @admin.display(description="accuracy")
    def accuracy(self, version: ModelVersion) -> str:
        return self._metric(version, "accuracy")

    @admin.display(description="F1")
    def f1(self, version: ModelVersion) -> str:
        return self._metric(version, "f1")

    @admin.display(description="ROC-AUC")
    def roc_auc(self, version: ModelVersion) -> str:
        return self._metric(version, "roc_auc")

    @admin.display(description="pictures")
    def measured_on(self, version: ModelVersion) -> str:
        """How many pictures, of which set, the accuracy, F1 and ROC-AUC beside it come from: a retrain
        cross-validated on 15 reviewed uploads showed its accuracy beside a shipped model's 2,595-picture one with
        nothing to tell them apart."""
        name, figures = model_version_headline_figures(metrics=version.metrics)
        count = figures.get("count")
        if not isinstance(count, int):
            return "—"
        kind = {"cross_validation": "CV", "test": "test set", "validation": "validation set"}
        return f"{count:,} ({kind.get(name.split(' › ')[0], name)})"

    @admin.action(permissions=["change"], description="Activate this version (workers switch to it within seconds)")
    def activate_version(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> TemplateResponse | None:
        """Asks first, on a page saying what is known of the version against the active one on the same pictures
        (delete_selected's pattern: the page posts the action back with ``post=yes``): a candidate right on 7 of
        10 ground-truth pictures against the active model's 10 was activated in one click, with no warning."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return None
        chosen = queryset.get()
        comparison = model_version_compare_with_active(version=chosen)
        # The page compared against the version active when it was shown (``active_seen``): if another became
        # active since, the comparison is asked for again rather than confirmed against a version no longer active.
        active_now = str(comparison.active.pk) if comparison.active else "none"
        confirmed = request.POST.get("post") == "yes"
        if not confirmed or request.POST.get("active_seen") != active_now:
            context = {
                **self.admin_site.each_context(request),
                "title": f"Activate {chosen.name}?",
                "opts": self.model._meta,
                "media": self.media,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "comparison": comparison,
                "active_seen": active_now,
                "active_changed": confirmed,
            }
            return TemplateResponse(request, "admin/phoneapp/modelversion/activate_confirmation.html", context)
        try:
            # No export here: it takes seconds of CPU, too long for a web request; workers convert it themselves.
            version = model_version_activate_if_loadable(version=chosen, prepare_export=False)
        except ModelLoadError:
            logger.exception("activation refused: model unavailable", extra={"model_version": chosen.name})
            self.message_user(
                request,
                f"Not activated: the files of {chosen.name} (or of its second opinion) are missing or changed on "
                "disk, so workers could not load it. The active model is unchanged; details are in the log.",
                messages.ERROR,
            )
            return None
        # Not starting with the name: the admin capitalises the first letter of every message.
        self.message_user(
            request,
            f"Activated {version.name}: workers switch to it within seconds, classifying with the version they hold "
            "until it is ready on their machine.",
            messages.SUCCESS,
        )
        return None


FIGURE_COLUMNS = ("count", "accuracy", "precision", "recall", "f1", "roc_auc", "false_positive_rate", "ece")


def figure_rows(metrics: Any) -> list[dict[str, Any]]:
    """One table row per measured set, each figure formatted, for the version's change page."""
    rows = []
    for name, figures in model_version_figure_sets(metrics=metrics):
        cells = []
        for column in FIGURE_COLUMNS:
            value = figures.get(column)
            cells.append(str(value) if column == "count" and value is not None else _format_figure(value))
        rows.append({"name": name, "cells": cells})
    return rows


def _format_figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"


# API tokens: the admin lists who has one, its first characters and when it was made and last used; the key
# itself is not stored (only its SHA-256), so no page can show it. Deleting one here revokes it.
_TOKEN_FIELDS = ("user", "key_prefix", "created", "last_used")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["key_prefix", "user", "created", "last_used"]
    fields = _TOKEN_FIELDS
    readonly_fields = _TOKEN_FIELDS
    search_fields = ["user__username"]
    list_select_related = ["user"]
    ordering = ["-created"]

    @admin.display(description="key")
    def key_prefix(self, token: ApiToken) -> str:
        return api_token_prefix(token)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # people make their own on "Your API token"; a key made here could never be shown to them

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False


class UserAdmin(DjangoUserAdmin):
    """Django's, except for one's own password: its form there sets a new one without the old one and without the
    login throttle, so a borrowed administrator's session could take the account over. It leads to the account's
    own page, where the old password is asked and counted like a sign-in (as ``/admin/password_change/`` does)."""

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        if str(request.user.pk) == str(id):
            return redirect("account-password")
        return super().user_change_password(request, id, form_url)


admin.site.unregister(User)
admin.site.register(User, UserAdmin)

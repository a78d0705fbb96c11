"""Uploads in the Django admin: the list a reviewer works through, the change page, and the bulk review actions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from phoneapp.admin.search import NulFindsNothingSearch
from phoneapp.admin.upload_filters import ConfidenceFilter, DisagreementFilter, ReviewedFilter
from phoneapp.models import Label, SecondReview, Upload, UploadQuerySet
from phoneapp.selectors.decisions import upload_verdict
from phoneapp.services.classification import uploads_retry_failed
from phoneapp.services.ground_truth import uploads_mark_ground_truth, uploads_unmark_ground_truth
from phoneapp.services.reviews import (
    BadBoxes,
    ReviewConflict,
    review_boxes_parse,
    upload_review_seen_require,
    upload_review_state,
    upload_set_reviewed_boxes,
    uploads_clear_review,
    uploads_confirm_predictions,
    uploads_review,
)
from phoneapp.services.upload_deletion import upload_delete, uploads_delete
from phoneapp.signed_in import signed_in_user
from phoneapp.templatetags.ui import phone_chance_percent


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


class _SeenReviewField(forms.CharField):
    """The review as the form showed it; what it was is no change of the upload (nor of the admin's log)."""

    widget = forms.HiddenInput

    def has_changed(self, initial: Any, data: Any) -> bool:
        return False


class UploadAdminForm(forms.ModelForm):
    """The upload's change form, with the review it showed (``review_seen``, :func:`upload_review_state`): a label
    or boxes sent from a form opened before another reviewer decided are refused on the form, as the review queue
    refuses a decision made on an outdated page. Sent anyway, a label left as the form showed it read as a
    relabelling and silently put the old label back over the other reviewer's decision."""

    review_seen = _SeenReviewField(required=False)
    reviewer: AbstractBaseUser | None = None  # the signed-in staff member, set per request by UploadAdmin.get_form

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["review_seen"].initial = upload_review_state(upload=self.instance)

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        seen = self.data.get("review_seen")
        changes_review = {"reviewed_label", "reviewed_boxes"} & set(self.changed_data)
        if seen is None or not changes_review or self.reviewer is None or self.instance.pk is None:
            return cleaned  # nothing to compare: no review changed, or a form sent without review_seen (a script's)
        try:
            # Locked until the admin's transaction ends (it wraps the whole change), so no decision slips in before
            # save_model.
            upload_review_seen_require(upload=self.instance, seen_state=seen, reviewer=self.reviewer)
        except ReviewConflict as error:
            raise forms.ValidationError(error.message) from error
        return cleaned


# Two reviewers disagree on these pictures: relabelling one would settle the dispute unseen (services/reviews.py).
_DISPUTED_LEFT_ALONE = (
    "{count} left as they were: two reviewers disagree on {them}. Settle a disputed picture with "
    "'Ground truth: phone' or 'Ground truth: not phone'."
)

# The words the admin actions and their messages use for each label ("Marked 3 upload(s) as not phone.").
_LABEL_WORDS = {Label.PHONE: "phone", Label.NOT_PHONE: "not phone"}


@admin.register(Upload)
class UploadAdmin(NulFindsNothingSearch):
    form = UploadAdminForm
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
    fields = [*readonly_fields[:13], "reviewed_label", "reviewed_boxes", "review_seen", *readonly_fields[13:]]

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

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if issubclass(form, UploadAdminForm):  # a class made for this request (modelform_factory)
            form.reviewer = signed_in_user(request)
        return form

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

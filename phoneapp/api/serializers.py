"""JSON shapes of uploads.

A result carries everything a page or a program needs to show the verdict without knowing the model: ``verdict``
(``phone``, ``not_phone`` or ``unsure`` -- judged by the rule of the model version that produced it), the
probability, that version's ``threshold`` and ``unsure_band``, the ``boxes`` where it found phones, and URLs of
the picture, its thumbnail and its heat map that only the owner can fetch (with the same token or session).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from phoneapp.models import Label, Upload, Verdict
from phoneapp.selectors.decisions import upload_decision_rule, upload_final_label, upload_has_verdict, upload_verdict
from phoneapp.services.heatmaps import upload_heatmap_servable


class ReviewedBoxSerializer(serializers.Serializer):
    """A phone's box as a reviewer drew or corrected it."""

    box = serializers.ListField(
        child=serializers.FloatField(),
        min_length=4,
        max_length=4,
        help_text="[x1, y1, x2, y2] as fractions of the picture's width and height (as shown, after EXIF rotation)",
    )


class BoxSerializer(ReviewedBoxSerializer):
    """A phone the model found: its box and how sure it is."""

    score = serializers.FloatField(help_text="how sure the model is that this box holds a phone, 0 to 1")


class UploadSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="this result in the API")
    # The stubs see Field.label (a field's caption); DRF's serializer metaclass moves declared fields into
    # ``_declared_fields``, so at run time no class attribute ``label`` is shadowed.
    label = serializers.ChoiceField(  # type: ignore[assignment]
        source="predicted_label",
        choices=Label.choices,
        allow_null=True,
        read_only=True,
        help_text="the model's label (phone / not_phone: the side of its threshold) once done; null before",
    )
    final_label = serializers.SerializerMethodField(
        help_text="the answer that stands, and what the `label` filter matches: the ground truth if staff set one, "
        "else a reviewer's label once settled (not waiting for, or disputed by, a second reviewer), else the model's; "
        "null before any"
    )
    verdict = serializers.SerializerMethodField(
        help_text="what to show: phone, not_phone or unsure (probability inside the model's unsure band); "
        "null until the upload is done"
    )
    threshold = serializers.SerializerMethodField(help_text="the deciding model version's threshold on probability")
    unsure_band = serializers.SerializerMethodField(
        help_text="[low, high]: probabilities the deciding model version calls unsure (contains the threshold)"
    )
    # No default: always sent (null before a verdict), so the schema lists it as required.
    model_version = serializers.CharField(
        source="model_version.name",
        allow_null=True,
        read_only=True,
        help_text="the version that judged it; null before",
    )
    reviewed_label = serializers.ChoiceField(
        choices=Label.choices, allow_null=True, read_only=True, help_text="a reviewer's label; null until reviewed"
    )
    unsure = serializers.SerializerMethodField(help_text="verdict == 'unsure' (kept for older clients)")
    boxes = serializers.SerializerMethodField(help_text="where the model found phones, best first; may be empty")
    reviewed_boxes = serializers.SerializerMethodField(
        help_text="where a reviewer says the phones are ([x1, y1, x2, y2] fractions); null when no reviewer drew any"
    )
    size_bytes = serializers.IntegerField(
        read_only=True,
        help_text="bytes stored: the picture as kept, after its location, camera and text metadata were removed",
    )
    image = serializers.SerializerMethodField(help_text="the picture; only its owner can fetch it")
    thumbnail = serializers.SerializerMethodField(
        help_text="a small JPEG of the picture (the picture itself until the worker has drawn it); only its owner "
        "can fetch it"
    )
    heatmap = serializers.SerializerMethodField(
        help_text="transparent PNG of where the phone is, at most 160 px on its longer side (scale it to the "
        "picture's width and height to lay it over), once it can be drawn (on first request for most models); "
        "null while it cannot be served (not drawn yet, being drawn again after its stored file was lost, or its "
        "model version was removed); only its owner can fetch it"
    )

    class Meta:
        model = Upload
        fields = [
            "id",
            "url",
            "status",
            "verdict",
            "label",
            "final_label",
            "probability",
            "threshold",
            "unsure_band",
            "model_version",
            "created",
            "processed",
            "original_name",
            "width",
            "height",
            "size_bytes",
            "error",
            "reviewed_label",
            "unsure",
            "boxes",
            "reviewed_boxes",
            "image",
            "thumbnail",
            "heatmap",
        ]
        read_only_fields = fields

    def _absolute(self, name: str, upload: Upload) -> str:
        path = reverse(name, args=[upload.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(serializers.URLField())
    def get_url(self, upload: Upload) -> str:
        return self._absolute("api-upload-detail", upload)

    @extend_schema_field(serializers.ChoiceField(choices=Verdict.values, allow_null=True))
    def get_verdict(self, upload: Upload) -> str | None:
        return upload_verdict(upload=upload)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_threshold(self, upload: Upload) -> float | None:
        return upload_decision_rule(upload=upload).threshold if upload_has_verdict(upload=upload) else None

    @extend_schema_field(serializers.ListField(child=serializers.FloatField(), allow_null=True))
    def get_unsure_band(self, upload: Upload) -> list[float] | None:
        if not upload_has_verdict(upload=upload):
            return None
        rule = upload_decision_rule(upload=upload)
        return [rule.unsure_low, rule.unsure_high]

    @extend_schema_field(serializers.ChoiceField(choices=Label.choices, allow_null=True))
    def get_final_label(self, upload: Upload) -> str | None:
        return upload_final_label(upload=upload)

    @extend_schema_field(serializers.BooleanField())
    def get_unsure(self, upload: Upload) -> bool:
        return self.get_verdict(upload) == Verdict.UNSURE

    @extend_schema_field(BoxSerializer(many=True))
    def get_boxes(self, upload: Upload) -> list[dict[str, Any]]:
        return list(upload.predicted_boxes or []) if upload_has_verdict(upload=upload) else []

    @extend_schema_field(ReviewedBoxSerializer(many=True, allow_null=True))
    def get_reviewed_boxes(self, upload: Upload) -> list[dict[str, Any]] | None:
        return None if upload.reviewed_boxes is None else list(upload.reviewed_boxes)

    @extend_schema_field(serializers.URLField())
    def get_image(self, upload: Upload) -> str:
        return self._absolute("api-upload-image", upload)

    @extend_schema_field(serializers.URLField())
    def get_thumbnail(self, upload: Upload) -> str:
        # Always there: until the worker has drawn the thumbnail, the URL serves the picture itself.
        return self._absolute("api-upload-thumbnail", upload)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_heatmap(self, upload: Upload) -> str | None:
        # Per item, also in the list: the service decides (a lost file is not linked) at no storage call for models
        # that store their evidence and one ``exists`` for zero-shot ones (upload_heatmap_offer says why).
        return self._absolute("api-upload-heatmap", upload) if upload_heatmap_servable(upload=upload) else None

    def to_representation(self, upload: Upload) -> dict[str, object]:
        data = super().to_representation(upload)
        data["label"] = data["label"] or None
        data["reviewed_label"] = data["reviewed_label"] or None
        if data["verdict"] is None:
            # Never half a verdict: without a stored probability there is no label to show either.
            data["label"] = None
            data["probability"] = None
        return data


class UploadPageSerializer(serializers.Serializer):
    """One page of ``GET /api/uploads/`` (for the schema): DRF's page-number pagination around the results."""

    count = serializers.IntegerField(help_text="uploads matching the filters, on all pages together")
    next = serializers.URLField(allow_null=True, help_text="the next page; null on the last")
    previous = serializers.URLField(allow_null=True, help_text="the previous page; null on the first")
    results = UploadSerializer(many=True)


class UploadRequestSerializer(serializers.Serializer):
    """The multipart form of ``POST /api/uploads/`` (for the schema)."""

    image = serializers.ListField(
        child=serializers.ImageField(), help_text="one or more pictures, each in its own 'image' part"
    )


class UploadFormSerializer(serializers.Serializer):
    """The browsable API's upload form: one file input taking several pictures (DRF cannot draw a list of files)."""

    image = serializers.ImageField(
        label="Pictures",
        help_text="One or more pictures (JPEG, PNG, WebP, GIF, BMP, TIFF or HEIC); one bad file refuses them all.",
        style={"template": "phoneapp/api/pictures_input.html"},
    )


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="send it as 'Authorization: Token <token>'")


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


class RefusedFileSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="the part's place among the request's 'image' parts, from 0")
    name = serializers.CharField(help_text="the part's file name")
    error = serializers.CharField(help_text="why it was refused")


class UploadRefusalSerializer(ErrorSerializer):
    files = RefusedFileSerializer(
        many=True,
        required=False,
        help_text="each file refused, by its place among the parts (the others were fine); absent when the request "
        "itself was refused (no file, too many files, a malformed Idempotency-Key)",
    )

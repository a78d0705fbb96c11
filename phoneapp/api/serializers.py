"""JSON shapes of uploads."""

from __future__ import annotations

from rest_framework import serializers

from phoneapp.models import Upload


class UploadCreatedSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Upload
        fields = ["id", "status", "url"]

    def get_url(self, upload: Upload) -> str:
        return self.context["request"].build_absolute_uri(f"/api/uploads/{upload.pk}/")


class UploadSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="predicted_label", allow_blank=True)
    model_version = serializers.CharField(source="model_version.name", default=None)
    reviewed_label = serializers.CharField(allow_blank=True)
    unsure = serializers.BooleanField(source="is_unsure")

    class Meta:
        model = Upload
        fields = [
            "id",
            "status",
            "label",
            "probability",
            "model_version",
            "created",
            "processed",
            "original_name",
            "width",
            "height",
            "error",
            "reviewed_label",
            "unsure",
        ]
        read_only_fields = fields

    def to_representation(self, upload: Upload) -> dict[str, object]:
        data = super().to_representation(upload)
        data["label"] = data["label"] or None
        data["reviewed_label"] = data["reviewed_label"] or None
        return data

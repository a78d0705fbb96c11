"""Template helpers: a verdict as words and a confidence bar ("Phone — 97%"), and the upload limits."""

from __future__ import annotations

from django import template
from django.conf import settings

from phoneapp.models import Label, Upload, UploadStatus

register = template.Library()


@register.filter
def verdict_state(upload: Upload) -> str:
    """One word for styling and for upload.js: phone, not_phone, unsure, pending, processing or failed."""
    if upload.status != UploadStatus.DONE:
        return upload.status
    if upload.is_unsure:
        return "unsure"
    return upload.predicted_label


@register.filter
def verdict_confidence(upload: Upload) -> int:
    """How sure the model is of the label it gave, in percent: p for "phone", 1 - p for "not a phone"."""
    if upload.probability is None:
        return 0
    probability = upload.probability if upload.predicted_label == Label.PHONE else 1 - upload.probability
    return round(probability * 100)


@register.filter
def phone_percent(upload: Upload) -> int:
    return round((upload.probability or 0) * 100)


@register.simple_tag
def upload_limits() -> dict[str, int]:
    """The limits the upload form announces (and upload.js checks before sending)."""
    return {"max_files": settings.UPLOAD_MAX_FILES, "max_bytes": settings.UPLOAD_MAX_BYTES}

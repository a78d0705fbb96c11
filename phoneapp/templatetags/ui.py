"""Template helpers: a verdict as words and a probability bar ("Phone — 97% phone"), and the form's limits."""

from __future__ import annotations

from django import template
from django.conf import settings

from phoneapp.models import Upload, UploadStatus

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
def phone_percent(upload: Upload) -> int:
    return round((upload.probability or 0) * 100)


@register.simple_tag
def upload_limits() -> dict[str, int]:
    """The limits the upload form announces (and upload.js checks before sending)."""
    return {"max_files": settings.UPLOAD_MAX_FILES, "max_bytes": settings.UPLOAD_MAX_BYTES}


@register.simple_tag
def unsure_band() -> dict[str, int]:
    """The unsure band in percent, for shading it on the probability bar."""
    low, high = settings.UNSURE_BAND
    return {"low": round(low * 100), "width": round((high - low) * 100)}

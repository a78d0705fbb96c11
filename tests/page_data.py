"""Uploads in a chosen state, written straight to the database (no model run), for page and selector tests."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from phoneapp.models import Label, ModelVersion, Upload, UploadStatus
from tests.images import draw_picture, encode


def model_version(name: str = "model-a") -> ModelVersion:
    version, _ = ModelVersion.objects.get_or_create(name=name, defaults={"path": name, "checksum": "0" * 64})
    return version


def make_upload(
    owner: User,
    *,
    probability: float | None = 0.9,
    status: str = UploadStatus.DONE,
    reviewed: str = "",
    reviewer: User | None = None,
    version: str = "model-a",
    name: str = "picture.jpg",
    created: datetime | None = None,
    threshold: float = 0.5,
    picture: Image.Image | None = None,
    sha256: str = "",
    boxes: list[dict[str, object]] | None = None,
) -> Upload:
    """An upload whose verdict follows ``probability`` (label by ``threshold``), optionally reviewed.

    Each gets its own ``sha256`` (a different picture) unless one is given: equal ones are the same picture sent
    again, which the review queue shows once."""
    picture = picture or draw_picture(width=320, height=240)
    upload = Upload(
        owner=owner,
        original_name=name,
        sha256=sha256 or uuid.uuid4().hex * 2,
        size_bytes=1000,
        width=picture.width,
        height=picture.height,
        content_type="image/jpeg",
        status=status,
        created=created or timezone.now(),
    )
    upload.image.save("upload.jpg", ContentFile(encode(picture)), save=False)
    upload.thumbnail.save("thumbnail.jpg", ContentFile(encode(picture.resize((160, 120)))), save=False)
    if status == UploadStatus.DONE:
        assert probability is not None, "a finished upload has a probability"
        upload.probability = probability
        upload.predicted_label = Label.PHONE if probability >= threshold else Label.NOT_PHONE
        upload.model_version = model_version(version)
        upload.processed = timezone.now()
        upload.predicted_boxes = boxes or []
    if reviewed:
        upload.reviewed_label = reviewed
        upload.reviewed_by = reviewer
        upload.reviewed_at = timezone.now()
    upload.save()
    return upload


def model_version_with_manifest(name: str, *, threshold: float, unsure_band: list[float] | None = None) -> ModelVersion:
    """A model version whose manifest (in the test's ``MODELS_DIR``) sets ``threshold`` and maybe ``unsure_band``."""
    import hashlib
    import json

    from django.conf import settings

    manifest = {"version": name, "kind": "fine-tuned", "threshold": threshold, "files": {}, "metrics": {}}
    if unsure_band is not None:
        manifest["unsure_band"] = unsure_band
    text = json.dumps(manifest)
    folder = settings.MODELS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(text)
    checksum = hashlib.sha256(text.encode()).hexdigest()
    version, _ = ModelVersion.objects.update_or_create(name=name, defaults={"path": name, "checksum": checksum})
    return version

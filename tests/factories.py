"""The one place tests build their data: users, model versions, uploads (with their files) and reviews.

Rows are written straight to the database in the state asked for (no model runs), so a test arranges exactly what
it needs; reviews go through the review service, as a reviewer's would.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from phoneapp.models import Label, ModelVersion, Upload, UploadStatus
from phoneapp.services.reviews import uploads_set_reviewed_label
from tests.images import draw_picture, encode


def make_user(username: str, *, staff: bool = False, superuser: bool = False, password: str = "") -> User:
    """A user who can log in with ``password`` (default: ``<username>-password-1``); staff reach the review queue
    and the dashboard, a superuser every admin page too."""
    password = password or f"{username}-password-1"
    return User.objects.create_user(username, password=password, is_staff=staff, is_superuser=superuser)


def client_for(user: User) -> Client:
    """A test client logged in as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def make_model_version(name: str = "model-a") -> ModelVersion:
    """A registered version without files on disk (its verdict rule is the default threshold 0.5 and its band)."""
    version, _ = ModelVersion.objects.get_or_create(name=name, defaults={"path": name, "checksum": "0" * 64})
    return version


def make_model_version_with_manifest(
    name: str, *, threshold: float, unsure_band: list[float] | None = None
) -> ModelVersion:
    """A model version whose manifest (in the test's ``MODELS_DIR``) sets ``threshold`` and maybe ``unsure_band``."""
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


def chance_shown(probability: float) -> str:
    """How the pages say a probability of "phone" ("97%", "over 99%", "under 1%"): for tests that compare a page with
    the stored verdict; test_decisions pins the rule itself."""
    percent = int(probability * 100 + 0.5)
    return "over 99%" if percent >= 100 else "under 1%" if percent <= 0 else f"{percent}%"


def make_upload(
    owner: User,
    *,
    probability: float | None = 0.9,
    status: str = UploadStatus.DONE,
    predicted_label: str = "",
    threshold: float = 0.5,
    version: str | ModelVersion | None = "model-a",
    reviewed: str = "",
    reviewer: User | None = None,
    name: str = "picture.jpg",
    created: datetime | None = None,
    picture: Image.Image | None = None,
    data: bytes | None = None,
    content_type: str = "image/jpeg",
    sha256: str = "",
    boxes: list[dict[str, object]] | None = None,
) -> Upload:
    """An upload with its picture and thumbnail stored, in ``status``.

    A done upload gets ``probability``, the label ``predicted_label`` or else the one ``threshold`` gives, and the
    model version ``version`` (a name is registered on first use; None leaves it empty). ``data`` stores those
    bytes as the picture (e.g. a corrupt file), else ``picture`` (default: a drawn 320x240) is encoded. Each upload
    is a different picture (its own ``sha256``) unless one is given: equal ones are the same picture sent again.
    ``reviewed`` labels it as if ``reviewer`` had (written directly; :func:`make_review` goes through the service).
    """
    picture = picture or draw_picture(width=320, height=240)
    stored = data if data is not None else encode(picture)
    upload = Upload(
        owner=owner,
        original_name=name,
        sha256=sha256 or uuid.uuid4().hex * 2,
        size_bytes=len(stored),
        width=picture.width,
        height=picture.height,
        content_type=content_type,
        status=status,
        created=created or timezone.now(),
    )
    extension = content_type.rpartition("/")[2].replace("jpeg", "jpg")
    upload.image.save(f"upload.{extension}", ContentFile(stored), save=False)
    upload.thumbnail.save("thumbnail.jpg", ContentFile(encode(picture.resize((160, 120)))), save=False)
    if status == UploadStatus.DONE:
        assert probability is not None, "a done upload has a probability (done_upload_has_verdict)"
        upload.probability = probability
        upload.predicted_label = predicted_label or (Label.PHONE if probability >= threshold else Label.NOT_PHONE)
        upload.model_version = make_model_version(version) if isinstance(version, str) else version
        upload.processed = timezone.now()
        upload.predicted_boxes = boxes or []
    if reviewed:
        upload.reviewed_label = reviewed
        upload.reviewed_by = reviewer
        upload.reviewed_at = timezone.now()
    upload.save()
    return upload


def make_review(upload: Upload, *, label: str, reviewer: User) -> Upload:
    """``reviewer`` labels ``upload`` through the review service (which also fixes the picture's split)."""
    uploads_set_reviewed_label(uploads=Upload.objects.filter(pk=upload.pk), label=label, reviewer=reviewer)
    upload.refresh_from_db()
    return upload

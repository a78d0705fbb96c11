""" "Where is the phone" overlays: computed after the verdict, never on the way to it.

The verdict is what people wait for, so the overlay runs as its own task on the low-priority ``heatmaps`` queue,
after the verdict is written. Models whose exported graph gives their evidence map with the verdict (the
fine-tuned ones) send that 7x7 map along with the task, which then only draws it (~5 ms); for the others the task
decodes the picture and asks the model for its evidence (Grad-CAM: a forward and a backward pass). Without a broker
it runs in-process right after the verdict, and a failure there is logged, never raised: a missing overlay must
not fail an upload.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from django.core.files.base import ContentFile

from inference.images import ImageError
from inference.manifest import ModelLoadError
from inference.overlay import heatmap_png, overlay_png
from phoneapp.models import Upload, UploadStatus
from phoneapp.resident_model import resident_model
from phoneapp.services.dispatch import enqueue
from phoneapp.services.stored_pictures import stored_file_write, stored_picture_for
from phoneapp.tasks import upload_heatmap_compute_task

logger = logging.getLogger(__name__)


def heatmap_enqueue(*, upload_id: int, evidence: np.ndarray | None = None) -> None:
    """Ask for the overlay of a classified upload: a low-priority task, or in-process when there is no broker
    (:func:`phoneapp.services.dispatch.enqueue`). A failure is logged, never raised: a missing overlay must not
    fail an upload (``manage.py draw_heatmaps`` asks again for the missing ones).

    ``evidence``, when the model gave it with the verdict, travels with the task: one logit per cell of the
    feature map (7x7 for a 224-pixel input, 9x9 for 288, 10x10 for 320).
    """
    enqueue(upload_heatmap_compute_task, args=(upload_id,), kwargs=_evidence_kwargs(evidence))


def _evidence_kwargs(evidence: np.ndarray | None) -> dict[str, list[list[float]]]:
    return {} if evidence is None else {"evidence": np.asarray(evidence, dtype=np.float32).round(4).tolist()}


def upload_heatmap_compute(*, upload_id: int, evidence: np.ndarray | None = None) -> Upload | None:
    """Store the overlay for a done upload, computed by the model version that gave its verdict.

    ``evidence`` is that version's map from the verdict's own forward pass, if it gave one; otherwise the picture
    is decoded and the model asked again. Returns the upload, or ``None`` when there is nothing to do: not done,
    already has an overlay, deleted, or the verdict came from a version that is no longer the loaded one
    (another model's evidence would explain a verdict it never gave).
    """
    upload = Upload.objects.filter(pk=upload_id, status=UploadStatus.DONE).first()
    if upload is None or upload.heatmap:
        return None
    try:
        loaded = resident_model.current()
    except ModelLoadError as error:
        logger.warning("heat map skipped: model unavailable", extra={"upload_id": upload_id, "error": error})
        return None
    if loaded.version.pk != upload.model_version_id:
        logger.info("heat map skipped: verdict from another model version", extra={"upload_id": upload_id})
        return None
    started = time.perf_counter()
    if evidence is not None:
        # The overlay only needs the picture's proportions, which the upload row has (upright, as shown).
        png = overlay_png(
            evidence, image_size=(upload.width, upload.height), config=loaded.classifier.manifest.preprocessing
        )
    else:
        try:
            picture = stored_picture_for(upload, loaded.classifier)
        except (ImageError, OSError) as error:
            logger.warning("heat map skipped: picture unreadable", extra={"upload_id": upload_id, "error": error})
            return None
        png = heatmap_png(loaded.classifier, picture)
    # A failed write leaves no partial overlay and raises StorageUnavailable: the task retries it later.
    stored_file_write(field_file=upload.heatmap, filename="heatmap.png", content=ContentFile(png))
    try:
        written = Upload.objects.filter(pk=upload_id, heatmap="").update(heatmap=upload.heatmap.name)
    except Exception:  # the database went away: no row names the file, so it must not stay (the task retries)
        upload.heatmap.storage.delete(upload.heatmap.name)
        raise
    if not written:  # a concurrent run stored one first; keep theirs
        upload.heatmap.storage.delete(upload.heatmap.name)
    logger.info(
        "heat map stored",
        extra={
            "upload_id": upload_id,
            "model_version": loaded.version.name,
            "heatmap_ms": round((time.perf_counter() - started) * 1000, 1),
            "from_verdict_pass": evidence is not None,
            "bytes": len(png),
        },
    )
    return Upload.objects.get(pk=upload_id)


def uploads_heatmap_enqueue_missing(*, limit: int = 1000) -> int:
    """Ask for the overlays that were never drawn (the broker was down after the verdict, or the uploads were
    classified before heat maps existed), for uploads whose verdict came from the active model version.

    Returns how many were asked for; uploads of other versions are left alone (see :func:`upload_heatmap_compute`).
    """
    from phoneapp.services.model_versions import model_version_active

    active = model_version_active()
    missing = Upload.objects.filter(status=UploadStatus.DONE, heatmap="", model_version=active).order_by("-created")
    upload_ids = list(missing.values_list("pk", flat=True)[:limit])
    for upload_id in upload_ids:
        heatmap_enqueue(upload_id=upload_id)
    return len(upload_ids)

""" "Where is the phone" overlays: never on the way to the verdict, and for most models drawn only when asked for.

Models whose verdict pass gives their evidence map (the fine-tuned and scene models: one logit per cell of the
feature map) store it with the verdict, one byte per cell (:func:`evidence_pack`), and the overlay is drawn from
it the first time someone asks for it (:func:`upload_heatmap_draw_on_request`, ~5 ms), then served from storage:
most overlays are never looked at, and a task per verdict cost the worker a Celery send and receive and a PNG
encode per upload (~6-8 ms of CPU, docs/performance.md). Models without it (zero-shot: Grad-CAM, a forward and a
backward pass) still get theirs from a task on the low-priority ``heatmaps`` queue after the verdict. Without a
broker that task runs in-process right after the verdict, and a failure there is logged, never raised: a missing
overlay must not fail an upload. When such an overlay's stored file is lost, the row stops naming it and that task
is sent again (drawn from the picture): until it is drawn it is "not drawn yet", and when nothing can draw it again
it is no longer offered (:func:`upload_heatmap_offer`).
"""

from __future__ import annotations

import logging
import struct
import time
from enum import StrEnum
from functools import lru_cache

import numpy as np
from django.core.cache import cache
from django.core.files.base import ContentFile

from inference.images import ImageError
from inference.manifest import MANIFEST_NAME, ModelLoadError, read_manifest
from inference.overlay import heatmap_png, overlay_png
from inference.preprocessing import PreprocessConfig
from phoneapp.models import ModelVersion, Upload, UploadStatus
from phoneapp.resident_model import resident_model
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.services.dispatch import enqueue
from phoneapp.services.model_versions import model_dir_of, model_version_active
from phoneapp.services.stored_files import stored_files_discard
from phoneapp.services.stored_pictures import stored_file_write, stored_picture_for
from phoneapp.tasks import upload_heatmap_compute_task

logger = logging.getLogger(__name__)

# rows, columns (uint16), the lowest and highest logit (float32); then one uint8 per cell, row by row.
_EVIDENCE_HEADER = struct.Struct("<HHff")


def evidence_pack(evidence: np.ndarray) -> bytes:
    """A 2-D evidence map in ``12 + rows * columns`` bytes (796 for the scene model's 28x28): each logit quantised
    to one of 256 steps between the map's lowest and highest. The overlay shows evidence relative to its peak
    with a 200-level alpha ramp, so the steps do not show; a JSON of rounded floats was ~5 kB a row."""
    values = np.nan_to_num(np.asarray(evidence, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if values.ndim != 2:
        raise ValueError(f"an evidence map is 2-D, not {values.shape}")
    low, high = float(values.min()), float(values.max())
    scale = (high - low) / 255 or 1.0
    cells: np.ndarray = np.rint((values - low) / scale).clip(0, 255).astype(np.uint8)
    header: bytes = _EVIDENCE_HEADER.pack(*values.shape, low, high)
    return header + cells.tobytes()


def evidence_unpack(data: bytes | memoryview) -> np.ndarray:
    """The map :func:`evidence_pack` stored, as float32 logits (within half a step of the originals)."""
    raw = bytes(data)
    rows, columns, low, high = _EVIDENCE_HEADER.unpack_from(raw)
    cells = np.frombuffer(raw, dtype=np.uint8, offset=_EVIDENCE_HEADER.size, count=rows * columns)
    scale = (high - low) / 255 or 1.0
    restored: np.ndarray = low + cells.reshape(rows, columns).astype(np.float32) * np.float32(scale)
    return restored.astype(np.float32)


def heatmap_enqueue(*, upload_id: int) -> None:
    """Ask for the overlay of an upload classified without stored evidence: a low-priority task, or in-process
    when there is no broker (:func:`phoneapp.services.dispatch.enqueue`). A failure is logged, never raised: a
    missing overlay must not fail an upload (``manage.py draw_heatmaps`` asks again for the missing ones)."""
    enqueue(upload_heatmap_compute_task, args=(upload_id,))


class HeatmapOffer(StrEnum):
    """What the pages and the API can say about an upload's overlay (:func:`upload_heatmap_offer`)."""

    SERVABLE = "servable"  # stored, or drawn (or sent to be drawn again) when asked for: offered
    NOT_DRAWN_YET = "not_drawn_yet"  # none recorded: the ``heatmaps`` task (or ``manage.py draw_heatmaps``) draws it
    MODEL_REMOVED = "model_removed"  # evidence stored, but its version's manifest (where it lies) is gone
    LOST = "lost"  # its stored file was lost and nothing can draw it again
    NONE = "none"  # not classified: no overlay to speak of


def upload_heatmap_draw_on_request(*, upload: Upload) -> Upload:
    """``upload`` with its overlay stored, when it can have one now: its stored file is there, or its verdict's
    evidence was stored and is drawn and stored here (later requests get that file) -- also when the file it had
    was lost from storage. A recorded overlay of a model without evidence (zero-shot: Grad-CAM) whose file was lost
    is sent to be drawn again from the picture (:func:`_heatmap_send_again`): without a broker it is drawn in this
    process before this returns; with one a ``heatmaps`` worker draws it, and until then it is "not drawn yet".
    Otherwise ``upload`` unchanged (not classified yet, a model whose overlay comes from a task, or nothing left to
    draw it from), and serving it answers 404.

    Two requests at once may both draw; the first stored is kept, the other removed. Raises
    :class:`~phoneapp.services.errors.StorageUnavailable` when the overlay cannot be written (nothing left
    behind; the next request tries again).
    """
    if _heatmap_file_present(upload):
        return upload
    config = _evidence_placement(upload)
    if config is not None:
        _heatmap_draw_from_evidence(upload, config)
    elif _picture_redraw_possible(upload):
        _heatmap_send_again(upload)
    return upload


def upload_heatmap_offer(*, upload: Upload) -> HeatmapOffer:
    """What can be said of ``upload``'s overlay, so pages and the API offer it only when asking for it gets it
    (:func:`upload_heatmap_draw_on_request`) and promise "not drawn yet" only when something will draw it. The one
    place that decides it: the pages' switch and caption (``ui.heatmap_offer``), the admin's and the API's
    ``heatmap`` link (:func:`upload_heatmap_servable`) all read it.

    A row can outlive its overlay file (a restore of the database without the media, a lost volume, an operator's
    clean-up); a name alone was offered and then answered 404. A lost file is logged once
    (:func:`_heatmap_loss_logged`) and then:

    - with stored evidence and its version's manifest: offered, drawn again when asked for (~5 ms, no model);
    - a zero-shot overlay whose picture is stored and whose verdict came from the active version: the row stops
      naming the file and the ``heatmaps`` task is sent again, once (:func:`_heatmap_send_again`): "not drawn yet"
      until a worker drew it, or offered at once without a broker (drawn here, in-process);
    - otherwise it is not offered (``model_removed``, ``lost``), never promised as "not drawn yet".

    Cost, as lists show it per item (the API's list does; the history page shows no heat map and never calls
    this): evidence is asked first, so for the models that store it (the shipped scene and fine-tuned ones)
    offering needs no call to storage (one per upload would be a request each on S3), only a manifest file check
    per upload and a cached manifest read per version; no model is loaded. A zero-shot upload costs one
    ``storage.exists``; only a lost one costs more: the active version and the picture's ``exists``, and once per
    loss an UPDATE and the task's send (without a broker, its Grad-CAM in this request, as every verdict's is
    there). So asking may write, once, like the overlay request drawing from evidence does.
    """
    if _evidence_placement(upload) is not None or _heatmap_file_present(upload):
        return HeatmapOffer.SERVABLE
    if upload.status != UploadStatus.DONE:
        return HeatmapOffer.NONE
    if upload.evidence is not None:
        if upload.heatmap:
            _heatmap_loss_logged(upload, "heat map file missing; its model version is no longer installed")
        return HeatmapOffer.MODEL_REMOVED
    if _picture_redraw_possible(upload):
        _heatmap_send_again(upload)
        # The row names an overlay again only once one was written: here (no broker) or by a worker since.
        return HeatmapOffer.SERVABLE if upload.heatmap else HeatmapOffer.NOT_DRAWN_YET
    if not upload.heatmap:
        return HeatmapOffer.NOT_DRAWN_YET
    _heatmap_loss_logged(upload, "heat map file missing; nothing can draw it again (picture or model version gone)")
    return HeatmapOffer.LOST


def upload_heatmap_servable(*, upload: Upload) -> bool:
    """Whether ``upload``'s overlay is offered (the API's ``heatmap`` link, the pages' switch): a link that
    answers 404 for good was offered for uploads whose model folder had been removed, or whose stored file was
    lost (:func:`upload_heatmap_offer`)."""
    return upload_heatmap_offer(upload=upload) is HeatmapOffer.SERVABLE


def _heatmap_draw_from_evidence(upload: Upload, config: PreprocessConfig) -> None:
    """Draw ``upload``'s overlay from its stored evidence (~5 ms, no model) and store it."""
    assert upload.evidence is not None  # _evidence_placement checked it
    lost = upload.heatmap.name or ""
    started = time.perf_counter()
    png = overlay_png(evidence_unpack(upload.evidence), image_size=(upload.width, upload.height), config=config)
    replaced = _heatmap_store(upload, png)
    if lost and replaced:  # only the request whose drawing took the lost name's place says so
        logger.warning("heat map file missing, drawn again", extra={"upload_id": upload.pk, "file_name": lost})
    _log_stored(upload, started=started, source="stored evidence, on request", size=len(png))


def _heatmap_send_again(upload: Upload) -> None:
    """``upload``'s overlay (zero-shot, no evidence) was recorded but its file is lost: the row stops naming it, so
    pages and the API say "not drawn yet" instead of linking a 404, and the ``heatmaps`` task is sent to draw it
    again from the picture (also found by ``manage.py draw_heatmaps`` should that send be lost). Only the request
    whose compare-and-swap on the lost name cleared it logs and sends, so a lost file is logged once and drawn
    once however many pages show it meanwhile. ``upload`` then names what the row names: the new overlay when the
    task ran here (no broker), else none yet. Grad-CAM needs the model (a forward and a backward pass), which is
    why a web process never draws it itself when workers exist."""
    lost = upload.heatmap.name
    if Upload.objects.filter(pk=upload.pk, heatmap=lost).update(heatmap=""):
        logger.warning(
            "heat map file missing, sent to be drawn again from the picture",
            extra={"upload_id": upload.pk, "file_name": lost},
        )
        heatmap_enqueue(upload_id=upload.pk)
    upload.heatmap.name = Upload.objects.filter(pk=upload.pk).values_list("heatmap", flat=True).first() or ""


# How long a lost overlay's warning is remembered as given (:func:`_heatmap_loss_logged`): a day, so a loss that
# lasts is said again daily rather than once per cache lifetime, and a shared cache (Redis) does not keep a key per
# lost file for good. Without an expiry the key stayed after its upload was deleted and a new name was lost, until
# someone flushed the cache.
HEATMAP_LOSS_WARNING_SECONDS = 24 * 60 * 60


def _heatmap_loss_logged(upload: Upload, message: str) -> None:
    """Log ``message`` the first time ``upload``'s recorded overlay is found missing with nothing to draw it again
    (the row keeps its name: it says the overlay existed and was lost), and again a day later if it still is.
    Pages and the API ask on every view, so "first" is remembered in the cache (shared with Redis, per process
    with the local-memory default) for :data:`HEATMAP_LOSS_WARNING_SECONDS`; a cache that does not answer costs a
    repeated warning, never the page."""
    key = f"heatmap-file-missing:{upload.pk}:{upload.heatmap.name}"
    try:
        first = cache.add(key, True, timeout=HEATMAP_LOSS_WARNING_SECONDS)
    except Exception:  # the cache backend is down; the warning matters more than its repetition
        first = True
    if first:
        logger.warning(message, extra={"upload_id": upload.pk, "file_name": upload.heatmap.name})


def _picture_redraw_possible(upload: Upload) -> bool:
    """Whether the ``heatmaps`` task would draw again the overlay of ``upload``, one without evidence whose recorded
    file is lost: its verdict came from the active version (the task asks the loaded model, and refuses to explain
    another version's verdict) and its picture is still stored."""
    if upload.evidence is not None or upload.status != UploadStatus.DONE or not upload.heatmap:
        return False
    active = model_version_active_or_none()
    if active is None or active.pk != upload.model_version_id:
        return False
    return bool(upload.image) and upload.image.storage.exists(upload.image.name)


def _heatmap_file_present(upload: Upload) -> bool:
    """Whether ``upload`` names a stored overlay and the file is there: a row can outlive its file (a restore
    without the media, a storage clean-up), and a name alone would be offered and then answer 404."""
    return bool(upload.heatmap) and upload.heatmap.storage.exists(upload.heatmap.name)


def _evidence_placement(upload: Upload) -> PreprocessConfig | None:
    """Where ``upload``'s stored evidence lies on its picture, when an overlay can be drawn from it now: a done
    upload with evidence whose model manifest is on disk; else ``None``. With :func:`_heatmap_file_present`, the one
    rule for drawing and offering."""
    if upload.evidence is None or upload.status != UploadStatus.DONE:
        return None
    return _preprocessing_of(upload.model_version)


def _preprocessing_of(version: ModelVersion | None) -> PreprocessConfig | None:
    """How ``version`` framed its input (where its evidence map lies on the picture); ``None`` when its manifest
    is gone or unreadable (its folder was removed), so no overlay can be placed.

    The manifest must be on disk now, not merely remembered by the cache below: every web process then agrees on
    whether an overlay can be drawn, whichever of them drew the page and whichever is asked for the overlay."""
    if version is None:
        return None
    model_dir = model_dir_of(version)
    if not (model_dir / MANIFEST_NAME).is_file():
        return None
    return _manifest_preprocessing(str(model_dir), version.checksum)


@lru_cache(maxsize=64)
def _manifest_preprocessing(model_dir: str, checksum: str) -> PreprocessConfig | None:
    # Cached per folder and checksum: a manifest never changes under the same checksum.
    try:
        return read_manifest(model_dir).preprocessing
    except ModelLoadError as error:
        logger.warning("heat map not drawn: model manifest unreadable", extra={"path": model_dir, "error": error})
        return None


def upload_heatmap_compute(*, upload_id: int, evidence: np.ndarray | None = None) -> Upload | None:
    """Store the overlay for a done upload (the ``heatmaps`` task's work).

    Drawn from ``evidence`` (a map sent with the task by earlier code) or the evidence stored with the verdict;
    without either, the picture is decoded and the model asked for its evidence. Returns the upload, or ``None``
    when there is nothing to do: not done, already has an overlay whose file is there (one whose file was lost is
    drawn again), deleted, or the model would have to be asked but the verdict came from a version that is no
    longer the loaded one (another model's evidence would explain a verdict it never gave).
    """
    upload = Upload.objects.filter(pk=upload_id, status=UploadStatus.DONE).first()
    if upload is None or _heatmap_file_present(upload):
        return None
    if evidence is None and upload.evidence is not None:
        upload_heatmap_draw_on_request(upload=upload)
        return upload if upload.heatmap else None
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
    _heatmap_store(upload, png)
    source = "evidence sent with the task" if evidence is not None else "the model asked again"
    _log_stored(upload, started=started, source=source, size=len(png))
    return Upload.objects.get(pk=upload_id)


def _heatmap_store(upload: Upload, png: bytes) -> bool:
    """Write ``png`` and name it on the row (in place of the name it had, whose file was lost) unless a concurrent
    run named one first (then theirs is kept and ``upload.heatmap`` names it). Returns whether this one was named.
    A failed write leaves no partial overlay and raises StorageUnavailable."""
    replaced = upload.heatmap.name or ""  # none yet, or one whose file was lost
    stored_file_write(field_file=upload.heatmap, filename="heatmap.png", content=ContentFile(png))
    try:
        written = Upload.objects.filter(pk=upload.pk, heatmap=replaced).update(heatmap=upload.heatmap.name)
    except Exception:  # the database went away: no row names the file, so it must not stay (a retry draws again)
        upload.heatmap.storage.delete(upload.heatmap.name)
        raise
    if not written:  # a concurrent run stored one first (or the upload is gone); keep theirs
        stored_files_discard(names=[upload.heatmap.name])
        upload.heatmap.name = Upload.objects.filter(pk=upload.pk).values_list("heatmap", flat=True).first() or ""
    return bool(written)


def _log_stored(upload: Upload, *, started: float, source: str, size: int) -> None:
    logger.info(
        "heat map stored",
        extra={
            "upload_id": upload.pk,
            "model_version_id": upload.model_version_id,
            "heatmap_ms": round((time.perf_counter() - started) * 1000, 1),
            "source": source,
            "bytes": size,
        },
    )


def uploads_heatmap_enqueue_missing(*, limit: int = 1000) -> int:
    """Ask for the overlays that were never drawn (the broker was down after the verdict, or the uploads were
    classified before heat maps existed), for uploads whose verdict came from the active model version. Uploads
    with stored evidence are not missing one: theirs is drawn when first asked for.

    Returns how many were asked for; uploads of other versions are left alone (see :func:`upload_heatmap_compute`).
    """
    active = model_version_active()
    missing = Upload.objects.filter(
        status=UploadStatus.DONE, heatmap="", evidence__isnull=True, model_version=active
    ).order_by("-created")
    upload_ids = list(missing.values_list("pk", flat=True)[:limit])
    for upload_id in upload_ids:
        heatmap_enqueue(upload_id=upload_id)
    return len(upload_ids)

"""Heat maps drawn when first asked for: the verdict stores its evidence, the first request draws and keeps the
overlay, later ones are served the stored file, and only who may see the picture gets either."""

from __future__ import annotations

import io
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image

from inference.manifest import read_manifest
from inference.overlay import overlay_png
from phoneapp.models import Upload, UploadStatus
from phoneapp.services import heatmaps
from phoneapp.services.api_tokens import api_token_regenerate
from phoneapp.services.heatmaps import evidence_pack, evidence_unpack
from phoneapp.services.model_versions import model_dir_of
from tests.factories import make_upload

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture

pytestmark = pytest.mark.django_db


def _centre_evidence(rows: int = 28, columns: int = 28) -> np.ndarray:
    """A map like the scene model's: negative logits everywhere, a phone in the middle."""
    evidence = np.full((rows, columns), -6.0, dtype=np.float32)
    evidence[rows // 2 - 2 : rows // 2 + 2, columns // 2 - 2 : columns // 2 + 2] = 3.5
    return evidence


def _upload_with_evidence(owner: User, evidence: np.ndarray | None = None) -> Upload:
    upload = make_upload(owner, version="imagenet-zero-shot")  # a version whose manifest is on disk
    Upload.objects.filter(pk=upload.pk).update(
        evidence=evidence_pack(_centre_evidence() if evidence is None else evidence)
    )
    return Upload.objects.get(pk=upload.pk)


def _body(response: object) -> bytes:
    assert isinstance(response, StreamingHttpResponse)  # a file answer, streamed
    return b"".join(response.streaming_content)  # type: ignore[arg-type]  # synchronous under the test client


def _expected_png(upload: Upload) -> bytes:
    """The overlay the upload's own version places over its picture, from the evidence as stored."""
    assert upload.model_version is not None and upload.evidence is not None
    config = read_manifest(model_dir_of(upload.model_version)).preprocessing
    return overlay_png(evidence_unpack(upload.evidence), image_size=(upload.width, upload.height), config=config)


def test_evidence_keeps_its_shape_and_every_logit_within_half_a_step_in_under_a_kilobyte() -> None:
    rng = np.random.default_rng(0)
    evidence = rng.normal(-2.0, 3.0, size=(28, 28)).astype(np.float32)

    packed = evidence_pack(evidence)
    restored = evidence_unpack(memoryview(packed))  # PostgreSQL hands a BinaryField back as a memoryview

    assert len(packed) == 12 + 28 * 28
    assert restored.shape == (28, 28) and restored.dtype == np.float32
    step = (evidence.max() - evidence.min()) / 255
    assert np.abs(restored - evidence).max() <= step / 2 + 1e-5
    assert evidence_unpack(evidence_pack(np.zeros((7, 9)))).tolist() == np.zeros((7, 9)).tolist()


def test_an_overlay_drawn_from_stored_evidence_looks_like_one_drawn_from_the_raw_map(settings: SettingsFixture) -> None:
    """The quantisation must not show: alpha and colour stay within a couple of levels of the unquantised map."""
    rng = np.random.default_rng(1)
    evidence = rng.normal(-1.0, 2.0, size=(28, 28)).astype(np.float32)
    config = read_manifest(Path(settings.MODELS_DIR) / "scene-lite0-v1").preprocessing

    raw = np.asarray(Image.open(io.BytesIO(overlay_png(evidence, image_size=(640, 480), config=config))), dtype=int)
    stored = evidence_unpack(evidence_pack(evidence))
    drawn = np.asarray(Image.open(io.BytesIO(overlay_png(stored, image_size=(640, 480), config=config))), dtype=int)

    assert np.abs(raw - drawn).max() <= 3


def test_first_request_draws_and_stores_the_overlay_and_later_ones_serve_the_stored_file(
    alice: User, alice_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = _upload_with_evidence(alice)
    assert not upload.heatmap

    first = alice_client.get(f"/uploads/{upload.pk}/heatmap")

    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    assert first["X-Content-Type-Options"] == "nosniff"
    served = _body(first)
    upload.refresh_from_db()
    assert upload.heatmap.name.startswith("heatmaps/")
    with upload.heatmap.open("rb") as stored:
        assert stored.read() == served
    assert served == _expected_png(upload)
    pixels = np.asarray(Image.open(io.BytesIO(served)))
    height, width = pixels.shape[:2]
    assert pixels[height // 2, width // 2, 3] > 150 and pixels[2, 2, 3] == 0  # red where the phone is

    def no_drawing(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("drawn again")

    monkeypatch.setattr(heatmaps, "overlay_png", no_drawing)
    second = alice_client.get(f"/uploads/{upload.pk}/heatmap")
    assert second.status_code == 200 and _body(second) == served
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")
    through_api = api.get(f"/api/uploads/{upload.pk}/heatmap")
    assert through_api.status_code == 200 and _body(through_api) == served
    assert Upload.objects.get(pk=upload.pk).heatmap.name == upload.heatmap.name


def test_the_api_draws_it_on_its_first_request_too(alice: User) -> None:
    upload = _upload_with_evidence(alice)
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")

    response = api.get(f"/api/uploads/{upload.pk}/heatmap")

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    upload.refresh_from_db()
    assert _body(response) == _expected_png(upload)
    with upload.heatmap.open("rb") as stored:
        assert stored.read() == _expected_png(upload)


def test_saved_renditions_are_named_after_the_picture_not_the_stored_file(alice: User) -> None:
    """The thumbnail and the heat map were saved under their stored files' random hex names (``88019314….jpg``)."""
    upload = _upload_with_evidence(alice)
    Upload.objects.filter(pk=upload.pk).update(original_name="kitchen table.jpeg")
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")

    dispositions = {
        what: api.get(f"/api/uploads/{upload.pk}/{what}")["Content-Disposition"] for what in ("thumbnail", "heatmap")
    }

    assert dispositions == {
        "thumbnail": 'inline; filename="kitchen table-thumbnail.jpg"',
        "heatmap": 'inline; filename="kitchen table-heatmap.png"',
    }


def test_another_user_gets_404_and_nothing_is_drawn_for_them(alice: User, bob: User, bob_client: Client) -> None:
    upload = _upload_with_evidence(alice)
    bob_api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=bob)}")

    assert bob_client.get(f"/uploads/{upload.pk}/heatmap").status_code == 404
    assert bob_api.get(f"/api/uploads/{upload.pk}/heatmap").status_code == 404
    assert bob_api.get(f"/api/uploads/{upload.pk}/").status_code == 404

    upload.refresh_from_db()
    assert not upload.heatmap


def test_pages_and_api_offer_a_heat_map_that_can_be_drawn_before_it_is(alice: User, alice_client: Client) -> None:
    upload = _upload_with_evidence(alice)
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")

    page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    assert 'id="show-heatmap"' in page and f'src="/uploads/{upload.pk}/heatmap"' in page
    assert "has not been drawn yet" not in page
    assert api.get(f"/api/uploads/{upload.pk}/").json()["heatmap"].endswith(f"/api/uploads/{upload.pk}/heatmap")

    without = make_upload(alice, version="imagenet-zero-shot")
    assert api.get(f"/api/uploads/{without.pk}/").json()["heatmap"] is None


def test_a_heat_map_whose_model_folder_was_removed_is_offered_only_if_it_was_drawn_before(
    alice: User, alice_client: Client, reviewer: User
) -> None:
    """Drawing needs the manifest of the verdict's version (where its evidence lies on the picture): once that
    folder is gone, neither the pages nor the API may offer a heat map that would answer 404."""
    undrawn = _upload_with_evidence(alice)
    drawn = _upload_with_evidence(alice)
    assert alice_client.get(f"/uploads/{drawn.pk}/heatmap").status_code == 200  # drawn and stored before
    assert undrawn.model_version is not None
    shutil.rmtree(model_dir_of(undrawn.model_version))
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")
    staff = Client()
    staff.force_login(reviewer)
    pages = {
        "detail": lambda pk: alice_client.get(f"/uploads/{pk}/"),
        "review": lambda pk: staff.get(f"/review/{pk}/"),
        "admin": lambda pk: staff.get(f"/admin/phoneapp/upload/{pk}/change/"),
    }

    for name, page_of in pages.items():
        response = page_of(undrawn.pk)
        assert response.status_code == 200, name
        page = response.content.decode()
        assert 'id="show-heatmap"' not in page and f"/uploads/{undrawn.pk}/heatmap" not in page, name
    assert "cannot be drawn" in alice_client.get(f"/uploads/{undrawn.pk}/").content.decode()
    assert api.get(f"/api/uploads/{undrawn.pk}/").json()["heatmap"] is None
    listed = {item["id"]: item["heatmap"] for item in api.get("/api/uploads/").json()["results"]}
    assert listed[undrawn.pk] is None
    # What a link would have answered, in every web process alike: this one read the manifest before the folder
    # went (drawing the other upload), one started since could not have.
    assert alice_client.get(f"/uploads/{undrawn.pk}/heatmap").status_code == 404
    refused = api.get(f"/api/uploads/{undrawn.pk}/heatmap")
    assert refused.status_code == 404 and "its model's files are not here" in refused.json()["error"]

    # The one drawn before the folder went is still there to serve, and still offered.
    assert alice_client.get(f"/uploads/{drawn.pk}/heatmap").status_code == 200
    for name, page_of in pages.items():
        page = page_of(drawn.pk).content.decode()
        assert 'id="show-heatmap"' in page and f'src="/uploads/{drawn.pk}/heatmap"' in page, name
    assert api.get(f"/api/uploads/{drawn.pk}/").json()["heatmap"].endswith(f"/api/uploads/{drawn.pk}/heatmap")
    assert listed[drawn.pk].endswith(f"/api/uploads/{drawn.pk}/heatmap")


def test_a_heat_map_whose_stored_file_was_lost_is_drawn_again_or_else_not_offered(
    alice: User, alice_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A row can outlive its overlay file (a restore without the media, a clean-up): naming a file is not enough
    to offer it. With its evidence and manifest it is drawn again on request; without, no page or API links it.
    Each loss is logged once, however often it is shown."""
    redrawable = _upload_with_evidence(alice)
    assert alice_client.get(f"/uploads/{redrawable.pk}/heatmap").status_code == 200
    redrawable.refresh_from_db()
    lost_name = redrawable.heatmap.name
    # No evidence (an overlay from the task) and no active version to draw its Grad-CAM again (a zero-shot one
    # the loaded model can redraw is: tests/test_pages_heatmap.py), or evidence of a version whose manifest is gone.
    gone = [make_upload(alice, version="imagenet-zero-shot"), make_upload(alice, version="an-older-model")]
    Upload.objects.filter(pk=gone[1].pk).update(evidence=evidence_pack(_centre_evidence()))
    for upload in gone:
        upload.heatmap.save("heatmap.png", io.BytesIO(b"\x89PNG lost"), save=True)
    for upload in [redrawable, *gone]:
        upload.heatmap.storage.delete(upload.heatmap.name)
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")
    caplog.set_level(logging.WARNING, logger=heatmaps.__name__)
    listed = {item["id"]: item["heatmap"] for item in api.get("/api/uploads/").json()["results"]}

    for upload in gone:
        page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
        assert 'id="show-heatmap"' not in page and f"/uploads/{upload.pk}/heatmap" not in page
        assert api.get(f"/api/uploads/{upload.pk}/").json()["heatmap"] is None
        assert listed[upload.pk] is None
        assert alice_client.get(f"/uploads/{upload.pk}/heatmap").status_code == 404

    page = alice_client.get(f"/uploads/{redrawable.pk}/").content.decode()
    assert 'id="show-heatmap"' in page and f'src="/uploads/{redrawable.pk}/heatmap"' in page
    assert api.get(f"/api/uploads/{redrawable.pk}/").json()["heatmap"].endswith(f"/api/uploads/{redrawable.pk}/heatmap")
    assert listed[redrawable.pk] is not None
    response = alice_client.get(f"/uploads/{redrawable.pk}/heatmap")
    assert response.status_code == 200 and _body(response) == _expected_png(redrawable)
    redrawable.refresh_from_db()
    assert redrawable.heatmap.name != lost_name
    with redrawable.heatmap.open("rb") as stored:
        assert stored.read() == _expected_png(redrawable)
    assert alice_client.get(f"/uploads/{redrawable.pk}/heatmap").status_code == 200
    warned = [
        getattr(record, "upload_id", None)
        for record in caplog.records
        if record.name == heatmaps.__name__ and record.levelno == logging.WARNING and "missing" in record.getMessage()
    ]
    assert Counter(warned) == Counter(upload.pk for upload in [redrawable, *gone])


def test_a_storage_failure_on_the_first_request_answers_503_and_leaves_nothing_behind(
    alice: User, alice_client: Client, isolated_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.files.storage import FileSystemStorage

    upload = _upload_with_evidence(alice)
    before = sorted(path for path in (isolated_storage / "media").rglob("*") if path.is_file())

    def disk_full(self: FileSystemStorage, name: str, content: object) -> str:
        path = Path(self.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG half an overlay")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", disk_full)
    response = alice_client.get(f"/uploads/{upload.pk}/heatmap")

    assert response.status_code == 503
    upload.refresh_from_db()
    assert not upload.heatmap
    assert sorted(path for path in (isolated_storage / "media").rglob("*") if path.is_file()) == before


@pytest.mark.django_db(transaction=True)
def test_a_verdict_with_evidence_stores_it_in_the_same_update_and_sends_no_heat_map_task(
    alice: User,
    alice_client: Client,
    settings: SettingsFixture,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks,
) -> None:
    """The fine-tuned graph gives its evidence with the verdict: it is kept on the row, no overlay task is sent,
    and the overlay drawn on request is the one that evidence gives, without asking the model again."""
    from inference.onnx_engine import OnnxClassifier
    from phoneapp.resident_model import resident_model
    from phoneapp.services.classification import upload_classify
    from phoneapp.services.model_versions import model_version_activate, model_version_register
    from phoneapp.services.stored_pictures import stored_picture_for
    from tests.test_performance_fast_path import fine_tuned_model_dir

    model_dir = fine_tuned_model_dir(Path(settings.MODELS_DIR), multiscale_grid=0)
    model_version_activate(version=model_version_register(model_dir=model_dir))
    upload = make_upload(alice, status=UploadStatus.PENDING)
    sent: list[object] = []
    monkeypatch.setattr(heatmaps, "enqueue", lambda task, **kwargs: sent.append(task))
    second_passes: list[object] = []
    monkeypatch.setattr(OnnxClassifier, "evidence_map", lambda self, image: second_passes.append(image))

    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        result = upload_classify(upload_id=upload.pk)

    assert result is not None and result.status == UploadStatus.DONE
    table = Upload._meta.db_table
    writes = [q["sql"] for q in queries.captured_queries if table in q["sql"] and not q["sql"].startswith("SELECT")]
    assert len(writes) == 2, writes  # the claim and the verdict, which carries the evidence
    assert sent == []  # no heat-map task
    stored = Upload.objects.get(pk=upload.pk)
    assert stored.evidence is not None and not stored.heatmap
    classifier = resident_model.current().classifier
    _, evidence = classifier.predict_and_explain(stored_picture_for(stored, classifier))
    assert evidence is not None
    restored = evidence_unpack(stored.evidence)
    assert restored.shape == evidence.shape
    assert np.abs(restored - evidence).max() <= (evidence.max() - evidence.min()) / 510 + 1e-5

    response = alice_client.get(f"/uploads/{upload.pk}/heatmap")
    assert response.status_code == 200
    expected = overlay_png(restored, image_size=(320, 240), config=classifier.manifest.preprocessing)
    assert _body(response) == expected
    assert Upload.objects.get(pk=upload.pk).heatmap
    assert second_passes == []  # drawn from the verdict's own evidence: no decode, no second model pass


def test_a_lost_heat_map_is_warned_of_once_a_day_and_its_cache_key_expires(
    alice: User, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, settings: SettingsFixture
) -> None:
    """Pages and the API ask on every view, so the warning is remembered as given in the cache; the key expires
    (it was set with no timeout: one key per lost file, kept for good in a shared Redis, even after the upload was
    deleted), and a loss that lasts is said again the next day."""
    import time

    from django.core.cache import cache
    from django.core.cache.backends import locmem

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}  # its clock below
    lost = make_upload(alice, version="an-older-model")  # evidence of a version whose manifest is gone
    Upload.objects.filter(pk=lost.pk).update(evidence=evidence_pack(_centre_evidence()))
    lost.refresh_from_db()
    lost.heatmap.save("heatmap.png", io.BytesIO(b"\x89PNG lost"), save=True)
    lost.heatmap.storage.delete(lost.heatmap.name)
    cache.clear()
    caplog.set_level(logging.WARNING, logger=heatmaps.__name__)

    def warnings() -> int:
        return sum(1 for record in caplog.records if record.name == heatmaps.__name__ and "missing" in record.message)

    for _ in range(3):
        assert heatmaps.upload_heatmap_offer(upload=lost) is heatmaps.HeatmapOffer.MODEL_REMOVED
    assert warnings() == 1

    a_day_later = time.time() + 24 * 60 * 60 + 1
    monkeypatch.setattr(locmem, "time", type("Clock", (), {"time": staticmethod(lambda: a_day_later)}))
    heatmaps.upload_heatmap_offer(upload=lost)
    assert warnings() == 2

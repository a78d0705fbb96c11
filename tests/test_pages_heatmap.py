"""The heat map's life in the app: drawn after the verdict by a task for models that cannot give their evidence
with it (the zero-shot one the tests run), served only to who may see the picture, toggled. Models that do give
it are drawn on request: tests/test_heatmap_on_request.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from PIL import Image

from phoneapp.models import Upload, UploadStatus
from phoneapp.services import heatmaps
from phoneapp.services.heatmaps import evidence_pack, upload_heatmap_compute
from tests.factories import make_upload
from tests.images import uploaded_file

# Transactional: uploads are classified in on_commit hooks, which a rolled-back test transaction never runs.
pytestmark = pytest.mark.django_db(transaction=True)


def test_classified_upload_gets_an_overlay_the_owner_can_see_and_toggle(alice_client: Client) -> None:
    alice_client.post("/", {"image": uploaded_file("desk.jpg")})
    upload = Upload.objects.get()
    assert upload.status == UploadStatus.DONE
    assert upload.heatmap.name.startswith("heatmaps/")

    response = alice_client.get(f"/uploads/{upload.pk}/heatmap")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert isinstance(response, StreamingHttpResponse)
    overlay = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert overlay.mode == "RGBA"
    assert overlay.width / overlay.height == pytest.approx(upload.width / upload.height, abs=0.01)

    page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    assert 'id="show-heatmap"' in page
    assert f'src="/uploads/{upload.pk}/heatmap"' in page


def test_overlay_is_hidden_from_other_users_but_not_from_staff(alice: User, bob_client: Client, reviewer: User) -> None:
    upload = make_upload(alice)
    upload.heatmap.save("heatmap.png", io.BytesIO(b"\x89PNG fake"), save=True)
    assert bob_client.get(f"/uploads/{upload.pk}/heatmap").status_code == 404
    staff = Client()
    staff.force_login(reviewer)
    assert staff.get(f"/uploads/{upload.pk}/heatmap").status_code == 200


def test_upload_without_overlay_answers_404_and_its_page_says_it_is_not_drawn_yet(alice: User) -> None:
    upload = make_upload(alice)
    client = Client()
    client.force_login(alice)
    assert client.get(f"/uploads/{upload.pk}/heatmap").status_code == 404
    page = client.get(f"/uploads/{upload.pk}/").content.decode()
    assert "has not been drawn yet" in page
    assert 'id="show-heatmap"' not in page


def test_a_failing_overlay_never_costs_the_verdict(alice_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("out of memory while drawing")

    monkeypatch.setattr(heatmaps, "heatmap_png", broken)
    alice_client.post("/", {"image": uploaded_file("desk.jpg")})
    upload = Upload.objects.get()
    assert upload.status == UploadStatus.DONE
    assert not upload.heatmap


def test_overlay_is_not_drawn_by_a_different_model_than_the_verdicts(alice: User) -> None:
    upload = make_upload(alice, version="an-older-model")
    assert upload_heatmap_compute(upload_id=upload.pk) is None
    upload.refresh_from_db()
    assert not upload.heatmap


def test_overlay_task_goes_to_the_low_priority_queue_not_the_verdicts_one() -> None:
    from phoneapp.celery import app

    router = app.amqp.router
    assert router.route({}, "phoneapp.tasks.upload_heatmap_compute_task")["queue"].name == "heatmaps"
    assert router.route({}, "phoneapp.tasks.upload_classify_task")["queue"].name == "classify"


def test_draw_heatmaps_command_fills_in_missing_overlays_of_the_active_model(alice: User) -> None:
    from django.core.management import call_command

    from phoneapp.services.model_versions import model_version_active

    active = model_version_active()
    missing = make_upload(alice, version=active.name)
    older = make_upload(alice, version="an-older-model")
    # Not missing: its overlay is drawn from the stored evidence when first asked for.
    drawable = make_upload(alice, version=active.name)
    Upload.objects.filter(pk=drawable.pk).update(evidence=evidence_pack(np.ones((7, 7))))
    output = io.StringIO()
    call_command("draw_heatmaps", stdout=output)
    assert output.getvalue().strip() == "Asked for 1 heat map(s)."
    missing.refresh_from_db()
    older.refresh_from_db()
    drawable.refresh_from_db()
    assert missing.heatmap
    assert not older.heatmap
    assert not drawable.heatmap


@pytest.mark.usefixtures("deployed_models")
def test_heat_map_task_draws_the_evidence_sent_with_it(alice: User) -> None:
    """Messages sent by earlier code carry the map as plain lists; the task draws it where the evidence peaks."""
    from phoneapp.tasks import upload_heatmap_compute_task

    upload = make_upload(alice, version="imagenet-zero-shot")  # the verdict of the loaded model
    evidence = [[0.0] * 7 for _ in range(7)]
    evidence[3][3] = 2.0  # the centre

    assert upload_heatmap_compute_task.apply(args=(upload.pk,), kwargs={"evidence": evidence}).get() == "stored"

    upload.refresh_from_db()
    with upload.heatmap.open("rb") as stored:
        pixels = np.asarray(Image.open(stored))
    height, width = pixels.shape[:2]
    assert pixels[height // 2, width // 2, 3] > 150
    assert pixels[1, 1, 3] == 0

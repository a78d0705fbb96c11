"""The heat map's life in the app: drawn after the verdict by a task for models that cannot give their evidence
with it (the zero-shot one the tests run), served only to who may see the picture, toggled. Models that do give
it are drawn on request: tests/test_heatmap_on_request.py."""

from __future__ import annotations

import io
import logging
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from PIL import Image

from phoneapp.models import Upload, UploadStatus
from phoneapp.services import heatmaps
from phoneapp.services.api_tokens import api_token_regenerate
from phoneapp.services.heatmaps import evidence_pack, upload_heatmap_compute
from tests.factories import make_upload
from tests.images import uploaded_file

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture

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

    # The caption reads with the verdict shown: an unsure one is not "judged too weak", a "no" is.
    captions = {}
    for probability, state in ((0.5, "unsure"), (0.01, "not_phone"), (0.9999, "phone")):
        label = "phone" if state == "phone" else "not_phone"
        Upload.objects.filter(pk=upload.pk).update(probability=probability, predicted_label=label)
        captions[state] = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    assert "could not tell whether that evidence is a phone" in captions["unsure"]
    assert "too weak" not in captions["unsure"]
    assert "judged that evidence too weak" in captions["not_phone"]
    # The switch shows the heat map only (the boxes, which say where the phone is, are always drawn): it promised
    # "where the phone is" on phone verdicts, and then lit fingers or pavement.
    for state, page in captions.items():
        assert "Show where the model looked" in page and "Show where the phone is" not in page, state


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


def _classified_with_its_heat_map_file_lost(client: Client) -> tuple[Upload, bytes]:
    """An upload the zero-shot model judged and drew the overlay of (in-process, no broker), whose overlay file
    was then lost from storage (a restore without the media, a clean-up); the row still names it."""
    client.post("/", {"image": uploaded_file("desk.jpg")})
    upload = Upload.objects.get()
    assert upload.evidence is None and upload.heatmap  # a Grad-CAM overlay: nothing stored to draw it from
    with upload.heatmap.open("rb") as lost:
        drawn_before = lost.read()
    upload.heatmap.storage.delete(upload.heatmap.name)
    return upload, drawn_before


def _file_missing_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == heatmaps.__name__ and record.levelno == logging.WARNING and "missing" in record.getMessage()
    ]


def test_a_zero_shot_heat_map_whose_file_was_lost_is_drawn_again_from_the_picture_when_asked_for(
    alice: User, alice_client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to say "not drawn yet" for ever: the task that draws it skipped an upload that named an overlay.
    Without a broker the page that finds it lost draws it again, in-process, and links it."""
    upload, drawn_before = _classified_with_its_heat_map_file_lost(alice_client)
    lost_name = upload.heatmap.name
    caplog.set_level(logging.WARNING, logger=heatmaps.__name__)
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")

    page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    assert 'id="show-heatmap"' in page and f'src="/uploads/{upload.pk}/heatmap"' in page
    assert "has not been drawn yet" not in page
    assert api.get(f"/api/uploads/{upload.pk}/").json()["heatmap"].endswith(f"/api/uploads/{upload.pk}/heatmap")

    response = alice_client.get(f"/uploads/{upload.pk}/heatmap")

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert isinstance(response, StreamingHttpResponse)
    served = b"".join(response.streaming_content)
    assert served == drawn_before  # the same Grad-CAM of the same picture by the same model
    upload.refresh_from_db()
    assert upload.heatmap.name != lost_name
    with upload.heatmap.open("rb") as stored:
        assert stored.read() == served

    def no_drawing(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("drawn again")

    monkeypatch.setattr(heatmaps, "heatmap_png", no_drawing)
    again = api.get(f"/api/uploads/{upload.pk}/heatmap")
    assert again.status_code == 200 and b"".join(again.streaming_content) == served
    assert len(_file_missing_warnings(caplog)) == 1


def test_a_lost_heat_map_that_nothing_can_draw_again_is_neither_offered_nor_promised(
    alice: User,
    alice_client: Client,
    reviewer: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Grad-CAM needs the picture and the model that judged it: with the picture gone too, or a verdict of a
    version no longer active, no page may link the heat map or say it "has not been drawn yet". Each loss is
    logged once, not on every view."""
    without_picture, _ = _classified_with_its_heat_map_file_lost(alice_client)
    without_picture.image.storage.delete(without_picture.image.name)
    older = make_upload(alice, version="an-older-model")  # picture still there; its model is not the loaded one
    older.heatmap.save("heatmap.png", io.BytesIO(b"\x89PNG lost"), save=True)
    older.heatmap.storage.delete(older.heatmap.name)
    drawn: list[object] = []

    def record_drawing(*args: object, **kwargs: object) -> bytes:
        drawn.append(args)
        return b""

    monkeypatch.setattr(heatmaps, "heatmap_png", record_drawing)
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")
    staff = Client()
    staff.force_login(reviewer)
    caplog.set_level(logging.WARNING, logger=heatmaps.__name__)

    for upload in (without_picture, older):
        for page in (alice_client.get(f"/uploads/{upload.pk}/"), staff.get(f"/review/{upload.pk}/")):
            assert page.status_code == 200
            text = page.content.decode()
            assert 'id="show-heatmap"' not in text and f"/uploads/{upload.pk}/heatmap" not in text
            assert "has not been drawn yet" not in text
            # Said as what it is: the heat map cannot be drawn again, or the picture itself is gone (then said so).
            gone = "The picture file is missing from storage" if upload == without_picture else "cannot be drawn again"
            assert gone in text
        assert api.get(f"/api/uploads/{upload.pk}/").json()["heatmap"] is None
        assert alice_client.get(f"/uploads/{upload.pk}/heatmap").status_code == 404
        assert api.get(f"/api/uploads/{upload.pk}/heatmap").status_code == 404
    assert drawn == []
    warned = [getattr(record, "upload_id", None) for record in _file_missing_warnings(caplog)]
    assert Counter(warned) == Counter([without_picture.pk, older.pk])


def test_with_workers_a_lost_zero_shot_heat_map_is_not_linked_but_not_drawn_yet_until_a_worker_drew_it(
    alice: User,
    alice_client: Client,
    reviewer: User,
    settings: SettingsFixture,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Grad-CAM is a forward and a backward pass of the model: with a broker the web process does not draw it, it
    sends the ``heatmaps`` task. Until a worker drew it, no page or API may link the lost file (it answered 404):
    it is "not drawn yet", logged once and sent once however often it is shown; then it is offered and served."""
    from phoneapp.tasks import upload_heatmap_compute_task

    upload, drawn_before = _classified_with_its_heat_map_file_lost(alice_client)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/3"  # never reached: sends are recorded below
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(upload_heatmap_compute_task, "apply_async", lambda args=(), **kwargs: sent.append(args))
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_regenerate(user=alice)}")
    staff = Client()
    staff.force_login(reviewer)
    caplog.set_level(logging.WARNING, logger=heatmaps.__name__)

    for _ in range(2):
        for page in (alice_client.get(f"/uploads/{upload.pk}/"), staff.get(f"/review/{upload.pk}/")):
            assert page.status_code == 200
            text = page.content.decode()
            assert 'id="show-heatmap"' not in text and f"/uploads/{upload.pk}/heatmap" not in text
            assert "has not been drawn yet" in text
        assert api.get(f"/api/uploads/{upload.pk}/").json()["heatmap"] is None
        assert [item["heatmap"] for item in api.get("/api/uploads/").json()["results"]] == [None]
        assert api.get(f"/api/uploads/{upload.pk}/heatmap").status_code == 404  # an old link: not drawn here

    assert sent == [(upload.pk,)]
    assert len(_file_missing_warnings(caplog)) == 1
    assert Upload.objects.get(pk=upload.pk).heatmap.name == ""  # the row no longer names a file that is not there
    monkeypatch.undo()
    assert upload_heatmap_compute_task.apply(args=(upload.pk,)).get() == "stored"  # the heatmaps worker's run

    drawn_page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    assert 'id="show-heatmap"' in drawn_page and f'src="/uploads/{upload.pk}/heatmap"' in drawn_page
    assert api.get(f"/api/uploads/{upload.pk}/").json()["heatmap"].endswith(f"/api/uploads/{upload.pk}/heatmap")
    served = api.get(f"/api/uploads/{upload.pk}/heatmap")
    assert served.status_code == 200 and b"".join(served.streaming_content) == drawn_before  # type: ignore[attr-defined]
    assert len(_file_missing_warnings(caplog)) == 1

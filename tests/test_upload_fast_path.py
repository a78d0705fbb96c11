"""The upload's cheap web path and the worker's share (issue 17): the web process stores and sends, the worker draws
the thumbnail from the picture it decodes anyway, and each side spends as few database statements as it can."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image

from phoneapp.models import Upload, UploadStatus
from phoneapp.services.classification import upload_classify
from phoneapp.services.uploads import uploads_create
from phoneapp.tasks import upload_classify_task
from tests.images import picture_bytes, uploaded_file

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_heatmaps(heatmaps_off: None) -> None:
    """Overlays play no part in what these tests prove (see ``heatmaps_off``)."""


@pytest.fixture
def broker_accepts(settings, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A configured broker that takes every classification message (nobody consumes them): the ids sent."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    sent: list[int] = []
    monkeypatch.setattr(upload_classify_task, "apply_async", lambda args=(), **options: sent.append(args[0]))
    return sent


def _upload_statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if "phoneapp_upload" in query["sql"]]


def test_until_the_worker_draws_it_the_thumbnail_address_serves_the_picture_uncached(
    alice_client: Client, alice: User, broker_accepts: list[int]
) -> None:
    data = picture_bytes(width=200, height=150)
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("a.jpg", data)})  # queued, not classified

    assert response.status_code == 201
    [result] = response.json()
    upload = Upload.objects.get(pk=result["id"])
    assert upload.status == UploadStatus.PENDING and not upload.thumbnail
    for address in (result["thumbnail"], f"/uploads/{upload.pk}/thumbnail"):
        served = alice_client.get(address)
        assert served.status_code == 200
        assert served["Content-Type"] == "image/jpeg"
        assert isinstance(served, StreamingHttpResponse)
        assert b"".join(served.streaming_content) == data  # the picture itself, not a thumbnail


def test_until_the_worker_draws_it_a_tiff_gets_a_jpeg_thumbnail_drawn_on_request(
    alice_client: Client, alice: User, broker_accepts: list[int]
) -> None:
    """Browsers cannot draw TIFF: serving the picture itself would show a broken image on the upload page."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(picture_bytes(width=640, height=480))).save(buffer, "TIFF")
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("scan.tif", buffer.getvalue())})

    assert response.status_code == 201
    [result] = response.json()
    upload = Upload.objects.get(pk=result["id"])
    assert upload.content_type == "image/tiff" and not upload.thumbnail
    for address in (result["thumbnail"], f"/uploads/{upload.pk}/thumbnail"):
        served = alice_client.get(address)
        assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
        assert served["X-Content-Type-Options"] == "nosniff"
        assert isinstance(served, StreamingHttpResponse)
        with Image.open(io.BytesIO(b"".join(served.streaming_content))) as drawn:
            assert (drawn.format, drawn.size) == ("JPEG", (320, 240))
    assert not Upload.objects.get(pk=upload.pk).thumbnail  # drawn for the answer, not stored


def test_the_worker_draws_the_thumbnail_with_the_verdict_and_a_later_duplicate_shares_it(
    alice: User, alice_client: Client, deployed_models: None
) -> None:
    data = picture_bytes(width=640, height=480)
    [first] = uploads_create(owner=alice, files=[uploaded_file("a.jpg", data)])  # classified in-process

    assert first.status == UploadStatus.DONE and first.thumbnail
    with Image.open(first.thumbnail.open("rb")) as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("JPEG", (320, 240))
    served = alice_client.get(f"/uploads/{first.pk}/thumbnail")
    assert isinstance(served, StreamingHttpResponse)
    with first.thumbnail.open("rb") as stored:
        assert b"".join(served.streaming_content) == stored.read()

    [again] = uploads_create(owner=alice, files=[uploaded_file("again.jpg", data)])
    assert again.thumbnail.name == first.thumbnail.name


def test_the_worker_claims_and_reads_an_upload_in_one_statement(
    alice: User, deployed_models: None, broker_accepts: list[int], settings
) -> None:
    [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])
    settings.CELERY_BROKER_URL = ""  # the worker's part, run here

    with CaptureQueriesContext(connection) as queries:
        done = upload_classify(upload_id=upload.pk)

    assert done is not None and done.status == UploadStatus.DONE
    statements = _upload_statements(queries)
    assert len(statements) == 2, statements  # the claim (UPDATE ... RETURNING) and the verdict with the thumbnail
    assert "RETURNING" in statements[0]
    assert Upload.objects.get(pk=upload.pk).thumbnail
    assert upload_classify(upload_id=upload.pk) is None  # done: a second delivery claims nothing


def test_with_a_broker_a_new_upload_is_one_insert_already_marked_queued(alice: User, broker_accepts: list[int]) -> None:
    with CaptureQueriesContext(connection) as queries:
        [upload] = uploads_create(owner=alice, files=[uploaded_file("a.jpg")])

    writes = [sql for sql in _upload_statements(queries) if not sql.startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith("INSERT"), writes  # no UPDATE of queued_at after the send
    assert broker_accepts == [upload.pk]
    stored = Upload.objects.get(pk=upload.pk)
    assert stored.status == UploadStatus.PENDING and stored.queued_at is not None


def test_validation_still_decodes_every_byte_of_a_jpeg(alice_client: Client) -> None:
    """Decoding at 1/8 scale still reads all the coded data: a picture cut short is refused, not stored."""
    whole = picture_bytes(width=1600, height=1200)
    buffer = io.BytesIO(whole[: len(whole) * 2 // 3])

    response = alice_client.post("/api/uploads/", {"image": uploaded_file("cut.jpg", buffer.getvalue())})

    assert response.status_code == 400
    assert "damaged" in response.json()["error"]
    assert not Upload.objects.exists()


def test_the_pages_tiff_rendition_is_drawn_once_for_repeated_requests(
    alice_client: Client, alice: User, broker_accepts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request for a TIFF's page picture decoded and re-encoded it whole (~0.7 s for 40 megapixels): a reload
    loop by one signed-in user tied up the web workers."""
    from phoneapp.services import thumbnails

    buffer = io.BytesIO()
    Image.open(io.BytesIO(picture_bytes(width=640, height=480))).save(buffer, "TIFF")
    [result] = alice_client.post("/api/uploads/", {"image": uploaded_file("scan.tif", buffer.getvalue())}).json()
    decoded: list[int] = []
    real_decode = thumbnails._undrawable_decoded

    def counted_decode(upload: Upload) -> Image.Image | None:
        decoded.append(upload.pk)
        return real_decode(upload)

    monkeypatch.setattr(thumbnails, "_undrawable_decoded", counted_decode)

    answers = [alice_client.get(f"/uploads/{result['id']}/image") for _ in range(3)]

    assert all(isinstance(answer, StreamingHttpResponse) for answer in answers)
    bodies = {b"".join(answer.streaming_content) for answer in answers}  # type: ignore[attr-defined]
    assert len(bodies) == 1 and all(answer["Content-Type"] == "image/jpeg" for answer in answers)
    assert decoded == [result["id"]]

"""Server-rendered pages: upload form, history with filters and pages, detail, and the picture files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload
from tests.images import uploaded_file

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


# Transactional: uploads are classified in on_commit hooks, which a rolled-back test transaction never runs.
pytestmark = pytest.mark.django_db(transaction=True)


def upload_via_form(client: Client, *names: str) -> list[Upload]:
    response = client.post("/", {"image": [uploaded_file(name) for name in names]})
    assert response.status_code == 302
    return list(Upload.objects.order_by("pk"))[-len(names) :]


def test_pages_require_login(client: Client) -> None:
    for url in ["/", "/history/", "/uploads/1/", "/uploads/1/image", "/uploads/1/thumbnail"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/")


def test_login_page_logs_a_user_in(alice: User) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    assert client.get("/history/").status_code == 200


def test_upload_form_without_javascript_shows_the_verdicts(alice_client: Client) -> None:
    response = alice_client.post("/", {"image": [uploaded_file("a.jpg"), uploaded_file("b.jpg")]}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "a.jpg" in page and "b.jpg" in page
    assert page.count('data-status="done"') == 2
    assert " chance of a phone" in page


def test_upload_form_reports_a_bad_file_and_still_lists_the_earlier_pictures(alice_client: Client) -> None:
    upload_via_form(alice_client, "earlier.jpg")
    response = alice_client.post("/", {"image": uploaded_file("notes.jpg", b"plain text")})
    assert response.status_code == 400
    assert "notes.jpg: The file is not a picture" in response.content.decode()
    assert "earlier.jpg" in response.content.decode()  # the refused form is no reason to hide them
    assert Upload.objects.count() == 1


def test_history_shows_thumbnails_verdicts_and_only_my_uploads(alice_client: Client, bob_client: Client) -> None:
    upload_via_form(alice_client, "mine.jpg")
    upload_via_form(bob_client, "bobs-secret.jpg")
    page = alice_client.get("/history/").content.decode()
    assert "mine.jpg" in page
    assert "bobs-secret.jpg" not in page
    mine = Upload.objects.get(original_name="mine.jpg")
    assert f"/uploads/{mine.pk}/thumbnail" in page


def test_history_filters_by_verdict_status_and_review(alice_client: Client, reviewer: User) -> None:
    phone, other = upload_via_form(alice_client, "phone.jpg", "other.jpg")
    Upload.objects.filter(pk=phone.pk).update(predicted_label="phone", probability=0.9)
    Upload.objects.filter(pk=other.pk).update(predicted_label="not_phone", probability=0.1)
    Upload.objects.filter(pk=other.pk).update(reviewed_label="phone", reviewed_by=reviewer, reviewed_at=other.created)

    def names(query: str) -> set[str]:
        return {u.original_name for u in alice_client.get(f"/history/?{query}").context["page"].object_list}

    # The reviewer's label wins over the model's when filtering by verdict.
    assert names("label=phone") == {"phone.jpg", "other.jpg"}
    assert names("label=not_phone") == set()
    assert names("reviewed=no") == {"phone.jpg"}
    assert names("reviewed=yes") == {"other.jpg"}
    assert names("status=done") == {"phone.jpg", "other.jpg"}
    assert names("status=failed") == set()
    assert names("label=bogus") == {"phone.jpg", "other.jpg"}


def test_history_paginates(alice_client: Client, settings: SettingsFixture) -> None:
    settings.HISTORY_PAGE_SIZE = 2
    upload_via_form(alice_client, "1.jpg", "2.jpg", "3.jpg")
    first = alice_client.get("/history/")
    assert len(first.context["page"].object_list) == 2
    assert first.context["page"].paginator.num_pages == 2
    second = alice_client.get("/history/?page=2")
    assert [u.original_name for u in second.context["page"].object_list] == ["1.jpg"]


def test_detail_page_and_picture_are_only_for_the_owner(alice_client: Client, bob_client: Client) -> None:
    [upload] = upload_via_form(alice_client, "mine.jpg")
    assert alice_client.get(f"/uploads/{upload.pk}/").status_code == 200
    image = alice_client.get(f"/uploads/{upload.pk}/image")
    assert image.status_code == 200
    assert image["Content-Type"] == "image/jpeg"
    assert image["X-Content-Type-Options"] == "nosniff"
    for url in [f"/uploads/{upload.pk}/", f"/uploads/{upload.pk}/image", f"/uploads/{upload.pk}/thumbnail"]:
        assert bob_client.get(url).status_code == 404, url


def test_the_owner_can_try_a_failed_upload_again_and_no_one_else_can(alice_client: Client, bob_client: Client) -> None:
    [upload] = upload_via_form(alice_client, "mine.jpg")
    Upload.objects.filter(pk=upload.pk).update(status="failed", error="The model is unavailable", attempts=8)
    page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    assert 'id="retry"' in page and f'action="/uploads/{upload.pk}/retry"' in page

    assert bob_client.post(f"/uploads/{upload.pk}/retry").status_code == 404
    assert alice_client.get(f"/uploads/{upload.pk}/retry").status_code == 405
    assert Upload.objects.get(pk=upload.pk).status == "failed"

    response = alice_client.post(f"/uploads/{upload.pk}/retry", follow=True)

    upload.refresh_from_db()
    assert (upload.status, upload.error, upload.attempts) == ("done", "", 1)  # no broker here: classified at once
    assert "mine.jpg was classified again." in response.content.decode()  # not "is being", beside its verdict
    assert 'id="retry"' not in response.content.decode()
    done_before = Upload.objects.values().get(pk=upload.pk)
    again = alice_client.post(f"/uploads/{upload.pk}/retry", follow=True)
    assert "nothing to try again" in again.content.decode()
    assert Upload.objects.values().get(pk=upload.pk) == done_before


def test_staff_can_see_any_picture_for_review(alice_client: Client, reviewer: User) -> None:
    [upload] = upload_via_form(alice_client, "mine.jpg")
    staff = Client()
    staff.force_login(reviewer)
    assert staff.get(f"/uploads/{upload.pk}/thumbnail").status_code == 200


def test_a_picture_pending_for_long_says_the_classifier_is_busy_or_paused(alice_client: Client, alice: User) -> None:
    """During a worker or broker outage a bare "Pending…" read as stuck: after 30 s the verdict says why it waits."""
    from datetime import timedelta

    from django.utils import timezone

    from phoneapp.models import UploadStatus
    from tests.factories import make_upload

    waiting = make_upload(alice, status=UploadStatus.PENDING, probability=None, version=None, name="waiting.jpg")
    Upload.objects.filter(pk=waiting.pk).update(created=timezone.now() - timedelta(minutes=5))
    just_sent = make_upload(alice, status=UploadStatus.PENDING, probability=None, version=None, name="new.jpg")

    note = '<small class="verdict-meta">Saved. The classifier is busy or paused'
    assert note in alice_client.get(f"/uploads/{waiting.pk}/").content.decode()
    assert note not in alice_client.get(f"/uploads/{just_sent.pk}/").content.decode()


def test_a_picture_gone_from_storage_is_said_on_its_page_not_drawn_broken(alice_client: Client, alice: User) -> None:
    """After a lost volume or a restore without the media, the detail page drew a broken image with no word why."""
    from tests.factories import make_upload

    upload = make_upload(alice, probability=0.9, name="lost.jpg")
    kept = make_upload(alice, probability=0.9, name="kept.jpg")
    upload.image.storage.delete(upload.image.name)

    lost_page = alice_client.get(f"/uploads/{upload.pk}/").content.decode()
    kept_page = alice_client.get(f"/uploads/{kept.pk}/").content.decode()

    assert "The picture file is missing from storage" in lost_page
    assert f'src="/uploads/{upload.pk}/image"' not in lost_page
    assert "missing from storage" not in kept_page and f'src="/uploads/{kept.pk}/image"' in kept_page


def test_the_pages_say_sign_in_and_sign_out_as_their_messages_do(alice_client: Client, client: Client) -> None:
    """The button said "Log out" and the login page "Log in", while messages, the 405 page and the upload page's
    cards said "signed out" / "Sign in again": one pair of words."""
    pages = [alice_client.get("/").content.decode(), client.get("/accounts/login/").content.decode()]
    assert "Sign out" in pages[0] and "<h1>Sign in</h1>" in pages[1]
    assert not [page for page in pages if "Log in" in page or "Log out" in page]


@pytest.mark.parametrize("debug", [True, False])
def test_a_deleted_or_someone_elses_picture_gets_the_sites_404_page_under_debug_too(
    debug: bool, alice_client: Client, bob: User, settings
) -> None:
    """The quick start runs with DEBUG on: a picture opened after it was deleted showed Django's unstyled debug
    page (its styles refused by the site's CSP) listing the URL patterns, with no way back into the app."""
    from tests.factories import make_upload

    settings.DEBUG = debug
    theirs = make_upload(bob)
    for address in (f"/uploads/{theirs.pk}/", f"/uploads/{theirs.pk + 1000}/", f"/uploads/{theirs.pk}/image"):
        response = alice_client.get(address)
        page = response.content.decode()
        assert response.status_code == 404, address
        assert "Nothing here" in page and 'href="/history/"' in page and "URLconf" not in page, address

"""Isolation: every endpoint tried as another user and anonymously; staff-only tools; CSRF; served pictures.

The per-upload routes are discovered from the URL configuration, so a view added later (a heat map, a review
page) is tried too without anyone remembering to add it here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from phoneapp.errors import UploadNotFound
from phoneapp.models import Upload, UploadStatus
from phoneapp.selectors.uploads import upload_get, upload_get_for_viewer
from phoneapp.services.api_tokens import api_token_regenerate
from tests.images import picture_bytes, uploaded_file

pytestmark = pytest.mark.django_db


def upload_routes() -> list[str]:
    """Every URL pattern (outside the admin) that takes an ``upload_id``, as a format string."""
    found: list[str] = []

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if not route.startswith("admin/"):
                    walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and "<int:upload_id>" in route:
                found.append("/" + route.replace("<int:upload_id>", "{id}").lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns, "")
    return found


ROUTES = upload_routes()


def plain_routes() -> list[str]:
    """Every URL pattern outside the admin that takes no argument (pages, lists, the API root of uploads)."""
    found: list[str] = []

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if not route.startswith("admin/"):
                    walk(pattern.url_patterns, route)
            elif "<" not in route and "(" not in route:
                found.append("/" + route.lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns, "")
    return found


# Pages anyone may open: the login forms (ours, and the admin's, routed through the login throttle), the health
# probe and the API's documentation (none says anything about anyone's data).
PUBLIC = {"/accounts/login/", "/admin/login/", "/healthz", "/api/schema/", "/api/docs/", "/api/redoc/"}


@pytest.fixture
def alices_upload(alice: User, isolated_storage: Path) -> Upload:
    """A finished upload of alice's, written through the real upload service (file, thumbnail and row)."""
    from phoneapp.services.uploads import uploads_create

    [upload] = uploads_create(owner=alice, files=[uploaded_file("alice-secret-holiday.jpg")])
    Upload.objects.filter(pk=upload.pk).update(status=UploadStatus.DONE, predicted_label="phone", probability=0.9)
    return Upload.objects.get(pk=upload.pk)


def test_routes_with_an_upload_id_were_found() -> None:
    assert {"/uploads/{id}/", "/uploads/{id}/image", "/uploads/{id}/thumbnail", "/api/uploads/{id}/"} <= set(ROUTES)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("route", ROUTES)
def test_other_user_gets_nothing_of_an_upload_from_any_route(
    route: str, method: str, alices_upload: Upload, bob_client: Client
) -> None:
    response = getattr(bob_client, method)(route.format(id=alices_upload.pk))

    # Staff-only pages send a non-staff user to the (admin) login page; owner-scoped ones answer 404.
    if response.status_code == 302:
        assert "login" in response["Location"], (route, response["Location"])
    else:
        assert response.status_code in (403, 404, 405), (route, response.status_code)
    body = b"".join(response) if response.streaming else response.content
    assert b"alice-secret-holiday" not in body
    alices_upload.refresh_from_db()
    assert alices_upload.reviewed_label == ""  # nothing was changed on bob's behalf


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_visitor_gets_nothing_of_an_upload_from_any_route(
    route: str, method: str, alices_upload: Upload, client: Client
) -> None:
    response = getattr(client, method)(route.format(id=alices_upload.pk))

    if response.status_code == 302:
        assert "login" in response["Location"], (route, response["Location"])
    else:
        assert response.status_code in (401, 403, 405), (route, response.status_code)
    body = b"".join(response) if response.streaming else response.content
    assert b"alice-secret-holiday" not in body


@pytest.mark.parametrize("route", sorted(set(plain_routes()) - PUBLIC))
def test_anonymous_visitor_is_sent_to_login_from_every_page(route: str, alices_upload: Upload, client: Client) -> None:
    response = client.get(route)

    if response.status_code == 302:
        assert "login" in response["Location"], (route, response["Location"])
    else:
        assert response.status_code in (401, 403, 405), (route, response.status_code)
    assert b"alice-secret-holiday" not in response.content


def test_every_page_was_tried_anonymously() -> None:
    assert {"/", "/history/", "/api/uploads/"} <= set(plain_routes()) - PUBLIC


def test_owner_fetches_own_picture_and_it_is_never_interpreted_as_html(
    alices_upload: Upload, alice_client: Client
) -> None:
    response = alice_client.get(f"/uploads/{alices_upload.pk}/image")

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert b"".join(response.streaming_content) == alices_upload.image.open("rb").read()
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_picture_that_is_also_html_is_served_as_an_image_only(alice_client: Client, alice: User) -> None:
    """A GIF carrying a script in a comment block decodes, so it is accepted; it must never run as a page."""
    polyglot = picture_bytes("GIF")
    polyglot = polyglot[:-1] + b"!\xfe\x1f<html><script>alert(1)</script></html>\x00;"
    response = alice_client.post("/api/uploads/", {"image": uploaded_file("trick.html.gif", polyglot, "text/html")})
    assert response.status_code == 201, response.content
    upload = Upload.objects.get(owner=alice)

    served = alice_client.get(f"/uploads/{upload.pk}/image")

    assert served["Content-Type"] == "image/gif"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]
    assert upload.image.name.endswith(".gif") and "html" not in upload.image.name


def test_stored_files_are_not_reachable_by_their_storage_path(alices_upload: Upload, alice_client: Client) -> None:
    for prefix in ("/media/", "/media-not-served/", "/static/../media/"):
        response = alice_client.get(prefix + alices_upload.image.name)
        assert response.status_code == 404, prefix


def test_picture_urls_carry_no_storage_name(alices_upload: Upload, alice_client: Client) -> None:
    """Pages link pictures by upload id through the checked view, never by the random storage name."""
    page = alice_client.get(f"/uploads/{alices_upload.pk}/").content.decode()
    assert Path(alices_upload.image.name).name not in page
    assert f"/uploads/{alices_upload.pk}/image" in page or f"/uploads/{alices_upload.pk}/thumbnail" in page


def test_other_users_uploads_are_not_listed(alices_upload: Upload, bob_client: Client) -> None:
    assert bob_client.get("/api/uploads/").json()["results"] == []
    assert b"alice-secret-holiday" not in bob_client.get("/history/").content
    assert b"alice-secret-holiday" not in bob_client.get(f"/?batch={alices_upload.pk}").content


def test_anonymous_api_calls_are_refused(alices_upload: Upload, client: Client) -> None:
    assert client.get("/api/uploads/").status_code in (401, 403)
    assert client.post("/api/uploads/", {"image": uploaded_file()}).status_code in (401, 403)
    assert client.get(f"/api/uploads/{alices_upload.pk}/").status_code in (401, 403)
    assert Upload.objects.count() == 1


def test_staff_reviewer_can_fetch_any_picture(alices_upload: Upload, reviewer: User) -> None:
    client = Client()
    client.force_login(reviewer)
    assert client.get(f"/uploads/{alices_upload.pk}/image").status_code == 200


@pytest.mark.parametrize("path", ["/admin/", "/admin/phoneapp/upload/", "/admin/phoneapp/modelversion/", "/review/"])
def test_only_staff_reach_admin_and_review(
    path: str, alices_upload: Upload, bob_client: Client, reviewer: User
) -> None:
    response = bob_client.get(path)
    assert response.status_code in (302, 403, 404)
    if response.status_code == 302:
        assert "login" in response["Location"]
    staff = Client()
    staff.force_login(reviewer)
    reached = staff.get(path, follow=True)  # /review/ redirects to its first picture or says the queue is empty
    assert reached.status_code == 200
    assert all("login" not in url for url, _ in reached.redirect_chain), reached.redirect_chain


def test_admin_review_action_is_refused_to_a_non_staff_user(alices_upload: Upload, bob_client: Client) -> None:
    response = bob_client.post(
        "/admin/phoneapp/upload/", {"action": "mark_as_not_phone", "_selected_action": [alices_upload.pk]}
    )
    assert response.status_code == 302 and "login" in response["Location"]
    alices_upload.refresh_from_db()
    assert alices_upload.reviewed_label == ""


# --- CSRF -----------------------------------------------------------------------------------------------------


@pytest.fixture
def strict_alice(alice: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def test_upload_form_without_csrf_token_is_refused(strict_alice: Client) -> None:
    response = strict_alice.post("/", {"image": uploaded_file()})
    assert response.status_code == 403
    assert Upload.objects.count() == 0


def test_api_upload_with_session_but_no_csrf_token_is_refused(strict_alice: Client) -> None:
    response = strict_alice.post("/api/uploads/", {"image": uploaded_file()})
    assert response.status_code == 403
    assert "csrf" in response.json()["error"].lower()
    assert Upload.objects.count() == 0


def test_api_upload_with_token_needs_no_csrf_token(alice: User) -> None:
    """Token clients are not browsers: no ambient cookie, so no CSRF exposure."""
    key = api_token_regenerate(user=alice)
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/uploads/", {"image": uploaded_file()}).status_code == 201


def test_upload_form_with_its_csrf_token_is_accepted(strict_alice: Client) -> None:
    page = strict_alice.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    response = strict_alice.post("/", {"image": uploaded_file(), "csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302
    assert Upload.objects.count() == 1


def test_admin_action_and_logout_without_csrf_token_are_refused(alices_upload: Upload, reviewer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    response = client.post(
        "/admin/phoneapp/upload/", {"action": "mark_as_not_phone", "_selected_action": [alices_upload.pk]}
    )
    assert response.status_code == 403
    alices_upload.refresh_from_db()
    assert alices_upload.reviewed_label == ""
    assert client.post("/accounts/logout/").status_code == 403


@pytest.mark.parametrize("path", ["/", "/history/", "/review/", "/accounts/login/", "/dashboard/"])
def test_every_post_form_on_a_page_carries_a_csrf_token(path: str, alices_upload: Upload, reviewer: User) -> None:
    client = Client()
    client.force_login(reviewer)
    response = client.get(path, follow=True)
    assert response.status_code == 200
    forms = re.findall(r"<form\b[^>]*>.*?</form>", response.content.decode(), flags=re.S | re.I)
    for form in forms:
        if re.search(r'method=["\']?post', form, flags=re.I):
            assert "csrfmiddlewaretoken" in form, form[:200]


def test_selectors_answer_someone_elses_upload_exactly_like_a_missing_one(bob: User, alices_upload: Upload) -> None:
    with pytest.raises(UploadNotFound) as someone_elses:
        upload_get(owner=bob, upload_id=alices_upload.pk)
    with pytest.raises(UploadNotFound) as missing:
        upload_get(owner=bob, upload_id=alices_upload.pk + 1000)
    assert someone_elses.value.message == missing.value.message
    with pytest.raises(UploadNotFound):
        upload_get_for_viewer(viewer=bob, upload_id=alices_upload.pk)


# Methods no form sends: a caller probing an address with them must get a refusal, never a server error (an
# OPTIONS on the Swagger page answered 500: DRF's OPTIONS metadata has no template there, and each one logged an
# ERROR with a traceback, which anyone could do at will).
PROBING_METHODS = ("options", "head", "put", "patch", "delete", "trace")


@pytest.mark.parametrize("method", PROBING_METHODS)
@pytest.mark.parametrize("route", sorted(set(plain_routes()) | set(ROUTES)))
def test_no_address_answers_an_unusual_method_with_a_server_error(
    route: str, method: str, alices_upload: Upload, client: Client, alice_client: Client
) -> None:
    path = route.format(id=alices_upload.pk)
    for caller in (client, alice_client):
        response = caller.generic(method.upper(), path)
        assert response.status_code < 500, (method, path, response.status_code)

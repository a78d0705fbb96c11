"""The API as DRF users expect it: a token from username and password, a token page, 401 with a challenge, a
browsable API, an OpenAPI schema with offline Swagger UI and ReDoc, picture URLs only the owner can fetch. Keys are
stored as SHA-256 digests only; DRF's clear keys are hashed by the migration so their scripts keep working."""

from __future__ import annotations

import hashlib
import importlib
import io
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from phoneapp.models import ApiToken, Upload
from phoneapp.services.api_tokens import api_token_regenerate
from tests.factories import make_upload
from tests.form_errors import password_field_invalid_because
from tests.images import uploaded_file

pytestmark = pytest.mark.django_db

PICTURES = ("image", "thumbnail", "heatmap")


def test_username_and_password_get_a_token_that_works_for_uploads(client: Client, alice: User) -> None:
    response = client.post("/api/token/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"  # a secret, answered to a request not signed in
    key = response.json()["token"]
    listed = client.get("/api/uploads/", headers={"Authorization": f"Token {key}"})
    assert listed.status_code == 200
    # The key cannot be handed out again (only its digest is kept): asking again rotates it.
    credentials = {"username": "alice", "password": "alice-password-1"}
    again = client.post("/api/token/", credentials, content_type="application/json").json()["token"]
    assert again != key
    assert client.get("/api/uploads/", headers={"Authorization": f"Token {again}"}).status_code == 200
    assert client.get("/api/uploads/", headers={"Authorization": f"Token {key}"}).status_code == 401


def test_the_database_holds_a_digest_of_the_key_never_the_key(alice: User) -> None:
    key = api_token_regenerate(user=alice)
    [token] = ApiToken.objects.all()
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert (token.prefix, len(key)) == (key[:6], 40)
    stored = [str(value) for value in ApiToken.objects.values_list(flat=False).get()]
    assert not any(key in value for value in stored)


def test_using_a_token_notes_when_it_was_last_used(client: Client, alice: User) -> None:
    key = api_token_regenerate(user=alice)
    assert ApiToken.objects.get().last_used is None
    client.get("/api/uploads/", headers={"Authorization": f"Token {key}"})
    first = ApiToken.objects.get().last_used
    assert first is not None and timezone.now() - first < timedelta(minutes=1)


def test_a_token_used_again_within_a_minute_is_not_written_again(client: Client, alice: User) -> None:
    """Every API request wrote the token's row: a script's requests queued on one row lock for nothing."""
    from django.test.utils import CaptureQueriesContext

    key = api_token_regenerate(user=alice)
    headers = {"Authorization": f"Token {key}"}

    def token_writes(queries: CaptureQueriesContext) -> list[str]:
        return [query["sql"] for query in queries if query["sql"].startswith('UPDATE "phoneapp_apitoken"')]

    with CaptureQueriesContext(connection) as first:
        assert client.get("/api/uploads/", headers=headers).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get("/api/uploads/", headers=headers).status_code == 200

    assert len(token_writes(first)) == 1
    assert token_writes(second) == []


def test_an_inactive_users_token_is_refused(client: Client, alice: User) -> None:
    key = api_token_regenerate(user=alice)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    response = client.get("/api/uploads/", headers={"Authorization": f"Token {key}"})
    assert (response.status_code, response["WWW-Authenticate"]) == (401, "Token")


def test_wrong_password_gets_no_token(client: Client, alice: User) -> None:
    response = client.post("/api/token/", {"username": "alice", "password": "guess"})
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["error"]
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("header", [None, "Token not-a-real-key"])
def test_missing_or_bad_credentials_answer_401_with_a_token_challenge(client: Client, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/uploads/", headers={**headers, "Accept": "application/json"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]


@pytest.mark.parametrize("scheme", ["Bearer", "Basic"])
def test_a_key_sent_under_another_scheme_is_told_which_header_to_use(
    client: Client, alice_client: Client, alice: User, scheme: str
) -> None:
    key = api_token_regenerate(user=alice)

    response = client.get("/api/uploads/", headers={"Authorization": f"{scheme} {key}"})

    assert response.status_code == 401
    assert response.json()["error"].endswith(
        f"The Authorization header's scheme '{scheme}' is not accepted: send 'Authorization: Token <key>'."
    )
    # A page behind a proxy's basic authentication sends such a header too: its session still works.
    assert alice_client.get("/api/uploads/", headers={"Authorization": f"{scheme} {key}"}).status_code == 200


REGENERATE = {"action": "regenerate", "password": "alice-password-1"}


def test_token_page_shows_the_key_once_then_only_its_prefix(alice_client: Client, alice: User) -> None:
    page = alice_client.get("/account/api-token/").content.decode()
    assert "You have no API token yet" in page
    created = alice_client.post("/account/api-token/", REGENERATE, follow=True).content.decode()
    [key] = re.findall(r'id="api-token" [^>]*value="([0-9a-f]{40})"', created)
    assert ApiToken.objects.get(user=alice).digest == hashlib.sha256(key.encode()).hexdigest()
    assert "shown only this once" in created
    later = alice_client.get("/account/api-token/").content.decode()
    assert key not in later and key[:6] in later and "never used" in later


def new_key_from_the_page(page_client: Client) -> str:
    page = page_client.post("/account/api-token/", REGENERATE, follow=True).content.decode()
    return re.findall(r'id="api-token" [^>]*value="([0-9a-f]{40})"', page)[0]


def test_reloading_the_page_that_shows_a_new_key_keeps_that_key(alice_client: Client, alice: User) -> None:
    """The page with the new key was the POST's own answer: a reload sent the form (and password) again and
    replaced the key just copied. Now the POST redirects, and a reload only reads."""
    made = alice_client.post("/account/api-token/", REGENERATE)
    assert (made.status_code, made["Location"]) == (302, "/account/api-token/")
    digest = ApiToken.objects.get(user=alice).digest

    shown = alice_client.get("/account/api-token/").content.decode()
    reloaded = alice_client.get("/account/api-token/").content.decode()

    [key] = re.findall(r'id="api-token" [^>]*value="([0-9a-f]{40})"', shown)
    assert hashlib.sha256(key.encode()).hexdigest() == digest == ApiToken.objects.get(user=alice).digest
    assert key not in reloaded and key[:6] in reloaded


def test_a_new_key_on_its_way_to_the_page_is_stored_nowhere_on_the_server(alice_client: Client, alice: User) -> None:
    """Only a digest of a key is kept. Passed through the session, a key whose redirect was not followed (a tab
    closed) stayed in the session table for weeks (found by a review of the change)."""
    from django.contrib.sessions.models import Session

    made = alice_client.post("/account/api-token/", REGENERATE)  # the redirect is not followed

    cookie = made.cookies["phonecheck_new_api_key"]
    assert (cookie["path"], cookie["max-age"], cookie["httponly"], cookie["samesite"]) == (
        "/account/api-token/",
        60,
        True,
        "Strict",
    )
    stored = " ".join(str(session.get_decoded()) for session in Session.objects.all())
    page = alice_client.get("/account/api-token/")
    [key] = re.findall(r'id="api-token" [^>]*value="([0-9a-f]{40})"', page.content.decode())
    assert ApiToken.objects.get(user=alice).digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in stored
    assert page.cookies["phonecheck_new_api_key"].value == ""  # shown once: the page deletes it


def test_a_new_key_revoked_before_its_page_was_shown_is_not_shown(alice_client: Client, alice: User) -> None:
    alice_client.post("/account/api-token/", REGENERATE)
    alice_client.post("/account/api-token/", {"action": "revoke"})  # another tab, before the redirect was followed

    page = alice_client.get("/account/api-token/").content.decode()

    assert 'id="api-token"' not in page and "You have no API token yet" in page


def test_regenerating_stops_the_old_key_and_revoking_stops_all(
    alice_client: Client, client: Client, alice: User
) -> None:
    old = new_key_from_the_page(alice_client)
    new = new_key_from_the_page(alice_client)
    assert new != old
    assert client.get("/api/uploads/", headers={"Authorization": f"Token {old}"}).status_code == 401
    assert client.get("/api/uploads/", headers={"Authorization": f"Token {new}"}).status_code == 200
    alice_client.post("/account/api-token/", {"action": "revoke"})
    assert not ApiToken.objects.exists()
    assert client.get("/api/uploads/", headers={"Authorization": f"Token {new}"}).status_code == 401


def test_admin_lists_tokens_by_prefix_created_and_last_used_only(client: Client, alice: User, reviewer: User) -> None:
    key = api_token_regenerate(user=alice)
    client.get("/api/uploads/", headers={"Authorization": f"Token {key}"})
    staff = Client()
    staff.force_login(reviewer)
    page = staff.get("/admin/phoneapp/apitoken/").content.decode()
    assert "alice" in page and f"{key[:6]}…" in page
    assert key not in page and ApiToken.objects.get().digest not in page
    headers = re.findall(r'<th scope="col" class="(?:sortable )?column-(\w+)', page)
    assert headers == ["key_prefix", "user", "created", "last_used"]
    assert staff.get("/admin/phoneapp/apitoken/add/").status_code == 403


def test_management_command_prints_a_new_working_key(client: Client, alice: User) -> None:
    out = io.StringIO()
    call_command("create_api_token", "alice", stdout=out)
    key = out.getvalue().strip()
    assert client.get("/api/uploads/", headers={"Authorization": f"Token {key}"}).status_code == 200


def test_migration_hashes_the_clear_keys_of_drf_authtoken_so_old_clients_keep_working(
    client: Client, alice: User
) -> None:
    """A database upgraded from DRF's authtoken: its clear key becomes a digest and the clear row is deleted."""
    from django.apps import apps

    clear_key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
    migration = importlib.import_module("phoneapp.migrations.0006_apitoken")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer NOT NULL, "
            "created timestamp with time zone NOT NULL)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer NOT NULL, "
            "created datetime NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token (key, user_id, created) VALUES (%s, %s, %s)",
            [clear_key, alice.pk, timezone.now()],
        )
    # The operation needs only these two of a schema editor (a real one cannot open inside SQLite's transaction).
    editor = SimpleNamespace(connection=connection, quote_name=connection.ops.quote_name)
    migration.hash_clear_tokens(apps, editor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
    token = ApiToken.objects.get(user=alice)
    assert (token.prefix, token.digest) == (clear_key[:6], hashlib.sha256(clear_key.encode()).hexdigest())
    assert client.get("/api/uploads/", headers={"Authorization": f"Token {clear_key}"}).status_code == 200


def test_a_browser_gets_the_browsable_api(alice_client: Client) -> None:
    response = alice_client.get("/api/uploads/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'class="response-info"' in page  # DRF's browsable page, not raw JSON
    # Its upload form takes files (DRF drew only a raw text box for them), it fits a phone, it has no inline
    # style for the site's CSP to refuse, and it speaks to users, not in the view's docstring.
    assert re.search(r'<input id="api-pictures" name="image" type="file" multiple', page)
    assert 'name="viewport"' in page
    assert "<style" not in page
    assert "Your uploads, newest first" in page and "``" not in page
    # Titled for people, not after the view's class ("Upload List Create Api").
    assert "<h1>Your uploads</h1>" in page and "Upload List Create Api" not in page


def test_openapi_schema_documents_uploads_tokens_and_the_batch_rule(client: Client) -> None:
    response = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/uploads/", "/api/uploads/{upload_id}/", "/api/token/"} <= set(schema["paths"])
    assert not any(path.startswith(("/api/docs", "/api/redoc", "/api/schema")) for path in schema["paths"])
    post = schema["paths"]["/api/uploads/"]["post"]
    assert "All or nothing" in post["description"]
    assert "It rotates" in schema["paths"]["/api/token/"]["post"]["description"]
    result = schema["components"]["schemas"]["Upload"]["properties"]
    assert {"verdict", "threshold", "unsure_band", "boxes", "image", "thumbnail", "heatmap"} <= set(result)


def test_openapi_schema_matches_what_the_api_answers(client: Client, alice_client: Client, alice: User) -> None:
    """A generated client must parse the real answers: the list is a page object, fields the API sends as null are
    nullable, the list's filters and the upload's refusals are declared."""
    from phoneapp.models import UploadStatus
    from tests.factories import make_upload

    schema = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()
    components = schema["components"]["schemas"]

    def resolved(node: dict) -> dict:
        return components[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    make_upload(alice, status=UploadStatus.PENDING, probability=None, version=None)
    answer = alice_client.get("/api/uploads/").json()
    listing = schema["paths"]["/api/uploads/"]["get"]
    page = resolved(listing["responses"]["200"]["content"]["application/json"]["schema"])
    assert page["type"] == "object"
    assert set(answer) == set(page["properties"])
    upload_schema = resolved(page["properties"]["results"]["items"])
    [result] = answer["results"]
    assert set(result) == set(upload_schema["properties"])
    not_nullable = [
        name
        for name, value in result.items()
        if value is None and not resolved(upload_schema["properties"][name]).get("nullable")
    ]
    assert not_nullable == []
    # Every field is always sent, so a generated client must not make one optional (model_version was).
    assert set(upload_schema["required"]) == set(result)
    # And none is written by the client: label, model_version, reviewed_label and size_bytes were not read-only.
    assert [name for name, field in upload_schema["properties"].items() if not field.get("readOnly")] == []
    # Nullable enums as OpenAPI 3.0 allows them: no "NullEnum" (enum: [null] without nullable).
    assert "NullEnum" not in components and components["LabelEnum"]["enum"] == ["phone", "not_phone"]
    assert {"page", "label", "status", "reviewed", "verdict", "q", "from", "to"} <= {
        parameter["name"] for parameter in listing["parameters"]
    }
    assert {"201", "400", "401", "413", "429", "503"} <= set(schema["paths"]["/api/uploads/"]["post"]["responses"])
    # Each operation its own words, in Markdown: GET and DELETE of one upload shared the class docstring, in RST.
    one = schema["paths"]["/api/uploads/{upload_id}/"]
    assert one["get"]["description"] != one["delete"]["description"]
    assert not [path for path, item in schema["paths"].items() for op in item.values() if "``" in op["description"]]


def test_every_refusal_the_api_answers_is_in_its_schema(client: Client, alice: User) -> None:
    """Requests that draw each refusal a client must handle (no credentials, a session without its CSRF token, a
    body of the wrong type) are sent for real, and each answer's status must be declared for its operation."""
    from tests.factories import make_upload

    schema = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()
    upload_id = make_upload(alice).pk
    session = Client(enforce_csrf_checks=True)
    session.force_login(alice)
    detail = "/api/uploads/{upload_id}/"
    sent = [
        *[(Client(), "get", path) for path in ("/api/uploads/", detail, *(f"{detail[:-1]}/{p}" for p in PICTURES))],
        (Client(), "post", "/api/uploads/"),
        (Client(), "delete", detail),
        (session, "post", "/api/uploads/"),
        (session, "delete", detail),
    ]
    answered = []
    for caller, method, path in sent:
        response = getattr(caller, method)(path.replace("{upload_id}", str(upload_id)))
        answered.append((method, path, response.status_code))
    token = "Token " + api_token_regenerate(user=alice)
    json_body = Client().post("/api/uploads/", "{}", content_type="application/json", headers={"Authorization": token})
    answered.append(("post", "/api/uploads/", json_body.status_code))
    answered.append(("post", "/api/token/", Client().post("/api/token/", "x", content_type="text/plain").status_code))

    assert {status for *_, status in answered} == {401, 403, 415}
    undeclared = [entry for entry in answered if str(entry[2]) not in schema["paths"][entry[1]][entry[0]]["responses"]]
    assert undeclared == []


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_api_docs_load_their_scripts_from_this_site_only(client: Client, page: str) -> None:
    html = client.get(page).content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
    assert "googleapis" not in html  # fonts from another host: refused by the CSP, and a call to Google


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_api_docs_say_their_language_for_screen_readers(client: Client, page: str) -> None:
    """Swagger's <html> had no lang: a screen reader set to another language read the page in that voice."""
    assert '<html lang="en">' in client.get(page).content.decode()


def test_result_carries_picture_urls_that_only_the_owner_can_fetch(
    alice_client: Client, bob_client: Client, client: Client, alice: User
) -> None:
    [created] = alice_client.post("/api/uploads/", {"image": uploaded_file("cat.jpg")}).json()
    for field in ("image", "thumbnail"):
        url = created[field]
        assert url.startswith("http://testserver/api/uploads/")
        owner = alice_client.get(url, headers={"Accept": "image/*"})
        assert owner.status_code == 200 and owner["Content-Type"].startswith("image/")
        assert bob_client.get(url).status_code == 404
        assert client.get(url).status_code == 401
    key = api_token_regenerate(user=alice)
    assert client.get(created["image"], headers={"Authorization": f"Token {key}"}).status_code == 200


def test_result_carries_the_models_boxes(alice_client: Client, alice: User) -> None:
    boxes = [{"box": [0.1, 0.2, 0.4, 0.8], "score": 0.97}, {"box": [0.6, 0.1, 0.9, 0.3], "score": 0.55}]
    upload = make_upload(alice, probability=0.97, boxes=boxes)
    assert alice_client.get(f"/api/uploads/{upload.pk}/").json()["boxes"] == boxes


def test_pending_result_has_no_verdict_and_no_probability(alice_client: Client, alice: User) -> None:
    upload = make_upload(alice, status="pending")
    data = alice_client.get(f"/api/uploads/{upload.pk}/").json()
    assert (data["status"], data["verdict"], data["probability"], data["label"]) == ("pending", None, None, None)
    assert Upload.objects.get(pk=upload.pk).status == "pending"


def test_the_same_picture_sent_again_carries_the_first_ones_boxes(alice_client: Client) -> None:
    [first] = alice_client.post("/api/uploads/", {"image": uploaded_file("desk.jpg")}).json()
    from phoneapp.services.model_versions import model_version_active

    boxes = [{"box": [0.2, 0.2, 0.6, 0.9], "score": 0.9}]
    Upload.objects.filter(pk=first["id"]).update(
        status="done",
        predicted_label="phone",
        probability=0.9,
        model_version=model_version_active(),
        predicted_boxes=boxes,
    )
    [again] = alice_client.post("/api/uploads/", {"image": uploaded_file("desk.jpg")}).json()
    assert again["id"] != first["id"] and again["boxes"] == boxes


@pytest.mark.parametrize("debug", [False, True])
def test_a_token_request_with_too_many_fields_is_refused_in_json(debug: bool, alice: User, settings) -> None:
    """The login throttle reads the posted user name before the API's exception handler runs: its refusal was
    Django's HTML debug page in DEBUG."""
    settings.DEBUG = debug
    fields = {f"field{index}": "x" for index in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}

    response = Client().post("/api/token/", {"username": alice.get_username(), "password": "wrong", **fields})

    assert (response.status_code, response.json()) == (400, {"error": "Too many form fields."})


def test_creating_a_key_on_the_page_asks_for_the_password(alice_client: Client, alice: User) -> None:
    """A key outlives a password change: a session someone else got hold of minted one without the password."""
    for sent, said in (
        ({"action": "regenerate"}, "Enter your password to create a token"),
        ({"action": "regenerate", "password": "not-hers"}, "That is not your password"),
    ):
        answer = alice_client.post("/account/api-token/", sent).content.decode()
        assert said in answer and "nothing was changed" in answer
        assert not ApiToken.objects.exists()
        assert 'id="api-token"' not in answer

    key = new_key_from_the_page(alice_client)
    assert ApiToken.objects.get(user=alice).digest == hashlib.sha256(key.encode()).hexdigest()


def test_a_refused_password_on_the_token_page_marks_its_field_invalid_and_names_why(alice_client: Client) -> None:
    """The refusal was a message above the page the POST redirected to, and the password field looked valid to a
    screen reader (WCAG 3.3.1): the page is answered again, the refusal the field's error, as Django marks one."""
    assert password_field_invalid_because(alice_client.get("/account/api-token/").content.decode()) == ""
    for sent, said in (
        ({"action": "regenerate"}, "Enter your password to create a token"),
        ({"action": "regenerate", "password": "not-hers"}, "That is not your password"),
    ):
        refused = alice_client.post("/account/api-token/", sent)  # the page itself, no redirect
        page = refused.content.decode()
        assert said in password_field_invalid_because(page) and page.count(said) == 1
        assert refused.status_code == 400 and not ApiToken.objects.exists()


def test_revoking_on_the_page_is_asked_once_more_before_it_is_done(alice_client: Client, alice: User) -> None:
    """One click on "Revoke token" stopped every script using the key, beside the password box that guards only
    the creation of a key (found by a browser walkthrough)."""
    key = new_key_from_the_page(alice_client)
    page = alice_client.get("/account/api-token/").content.decode()
    assert 'href="?confirm=revoke"' in page and 'value="revoke"' not in page  # a link to the question, no form

    asked = alice_client.get("/account/api-token/?confirm=revoke").content.decode()
    assert "Revoke your token?" in asked and key[:6] in asked and 'id="confirm-revoke"' in asked
    assert ApiToken.objects.filter(user=alice).exists()

    alice_client.post("/account/api-token/", {"action": "revoke"})
    assert not ApiToken.objects.filter(user=alice).exists()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "trace"])
def test_the_schema_refuses_other_methods_in_json_like_the_rest_of_the_api(client: Client, method: str) -> None:
    # The schema view drew its 405 with the schema's renderer: `error: Method "POST" not allowed.` in YAML.
    response = client.generic(method.upper(), "/api/schema/")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": f'Method "{method.upper()}" not allowed.'}


def test_the_schema_answers_options_in_json_and_is_itself_still_yaml_or_json(client: Client) -> None:
    options = client.options("/api/schema/")
    assert options.status_code == 200 and options["Content-Type"] == "application/json"
    assert options.json()["name"] == "OpenAPI schema"  # it was drf-spectacular's "Spectacular Api", in YAML
    assert client.get("/api/schema/")["Content-Type"].startswith("application/vnd.oai.openapi")
    assert client.head("/api/schema/")["Content-Type"].startswith("application/vnd.oai.openapi")
    as_json = client.get("/api/schema/", headers={"Accept": "application/json"})
    assert as_json["Content-Type"] == "application/json" and as_json.json()["openapi"].startswith("3.")

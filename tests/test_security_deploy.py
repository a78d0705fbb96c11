"""Production settings: ``check --deploy`` passes, secrets come only from the environment, /healthz says little."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.db.utils import load_backend
from django.test import Client

from phoneapp.services.health import health_report

REPO_ROOT = Path(__file__).resolve().parent.parent
# production_process starts Django once per test process: the tests stay in one (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("security_deploy")


def kept_environment() -> dict[str, str]:
    """What a child process needs to run, and no settings: not the test run's, and not the checkout's ``.env``
    (a developer's own, with DEBUG=1, made the start checks tested here pass)."""
    keep = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    return {**keep, "PHONECHECK_ENV_FILE": ""}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = kept_environment()
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**keep, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env() -> dict[str, str]:
    return {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "example.com"}


@pytest.fixture(scope="module")
def production_process() -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """One fresh process in production mode runs ``check --deploy`` and reports its settings (one start-up,
    which imports torch through the URLconf, is enough for both tests below)."""
    env = production_env()
    code = (
        "import django, json; django.setup(); from django.core.management import call_command;"
        "call_command('check', deploy=True, fail_level='WARNING'); from django.conf import settings as s;"
        "print('SETTINGS=' + json.dumps({'debug': s.DEBUG, 'key': s.SECRET_KEY, 'hosts': s.ALLOWED_HOSTS,"
        "'session': s.SESSION_COOKIE_SECURE, 'csrf': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS,"
        "'ssl': s.SECURE_SSL_REDIRECT, 'hsts_flags': [s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD]}))"
    )
    keep = kept_environment()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**keep, **env, "DJANGO_SETTINGS_MODULE": "phoneapp.settings"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result, env


def test_check_deploy_passes_with_production_settings(production_process) -> None:
    """``manage.py check --deploy --fail-level WARNING`` with DEBUG=0, a random 64-character key, one host."""
    result, _ = production_process
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_are_secure_and_read_from_the_environment(production_process) -> None:
    result, env = production_process
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("SETTINGS=")]
    assert json.loads(line.removeprefix("SETTINGS=")) == {
        "debug": False,
        "key": env["SECRET_KEY"],
        "hosts": ["example.com"],
        "session": True,
        "csrf": True,
        "hsts": 31_536_000,
        "ssl": True,
        "hsts_flags": [True, True],
    }


def test_hsts_subdomains_and_preload_are_the_operators_choice() -> None:
    """Both were fixed on in production: an operator whose other subdomains serve plain HTTP, or who will not
    commit the domain to browsers' preload lists, could not turn them off."""
    keep = kept_environment()
    chosen = {"SECURE_HSTS_INCLUDE_SUBDOMAINS": "0", "SECURE_HSTS_PRELOAD": "0"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from phoneapp import settings as s; print(s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)",
        ],
        cwd=REPO_ROOT,
        env={**keep, **production_env(), **chosen},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout.split()) == (0, ["False", "False"]), result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = production_env()
    del env["SECRET_KEY"]
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    "key",
    ["abc", "insecure-development-key-never-use-in-production", "django-insecure-" + "x1y2z3" * 10, "ab" * 40],
    ids=["3 characters", "the development key", "django's insecure default", "too few distinct characters"],
)
def test_production_refuses_to_start_with_a_short_or_default_secret_key(key: str) -> None:
    result = run_manage("check", env={**production_env(), "SECRET_KEY": key})

    assert result.returncode != 0
    assert "SECRET_KEY is too short or a default" in result.stderr
    assert key not in result.stderr  # the refused key is not echoed into logs


def web_start(variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import the web process's entry point (what gunicorn does first) with only these variables set."""
    keep = kept_environment()
    return subprocess.run(
        [sys.executable, "-c", "import phoneapp.wsgi"],
        cwd=REPO_ROOT,
        env={**keep, "DJANGO_SETTINGS_MODULE": "phoneapp.settings", **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_web_process_refuses_to_start_in_production_without_allowed_hosts() -> None:
    """Without ALLOWED_HOSTS Django answers every request 400; the web process says so at start instead. Workers
    and commands (same settings, no HTTP) still start."""
    env = production_env()
    del env["ALLOWED_HOSTS"]

    refused = web_start(env)
    assert refused.returncode != 0
    assert "ALLOWED_HOSTS must be set when DEBUG=0" in refused.stderr
    assert web_start({**env, "ALLOWED_HOSTS": "example.com"}).returncode == 0
    assert run_manage("check", env={key: env[key] for key in ("DEBUG", "SECRET_KEY")}).returncode == 0


def test_settings_file_holds_no_credentials() -> None:
    text = (REPO_ROOT / "phoneapp" / "settings.py").read_text()
    assert not re.search(r"\w+://[^\s\"']*:[^\s\"'@]*@", text)  # no user:password@ in any URL
    # The one literal key is the development fallback, refused when DEBUG=0 (test above).
    assert text.count("SECRET_KEY: str = env.str(") == 1


# --- /healthz -------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("deployed_models")
@pytest.mark.django_db
def test_healthz_is_200_when_database_and_model_are_usable(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["database"], body["broker"], body["model"]) == ("ok", "not configured", "ok")


@pytest.mark.usefixtures("deployed_models")
@pytest.mark.django_db
def test_healthz_answers_plain_http_probes_while_pages_redirect_to_https(settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # its middleware reads the settings on the first request

    assert client.get("/accounts/login/").status_code == 301
    probe = client.get("/healthz")
    assert probe.status_code == 200 and probe.json()["status"] == "ok"


@pytest.mark.usefixtures("deployed_models")
@pytest.mark.django_db
@pytest.mark.writes_model_files  # rewrites a weights or manifest file in place
def test_healthz_is_503_for_a_corrupt_model_without_saying_where(client: Client, settings) -> None:
    client.get("/healthz")  # registers the shipped model
    manifest = Path(settings.MODELS_DIR) / "imagenet-zero-shot" / "manifest.json"
    manifest.write_text(manifest.read_text().replace("imagenet", "tampered"))

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["model"] == "unavailable"
    assert str(settings.MODELS_DIR) not in response.content.decode()
    assert "manifest" not in response.content.decode()


@pytest.mark.usefixtures("deployed_models")
@pytest.mark.django_db
def test_healthz_is_503_when_the_active_models_second_opinion_is_gone(client: Client, settings) -> None:
    """Workers refuse a model whose second opinion is missing, so the probe must not call it healthy."""
    import shutil

    from inference.manifest import ModelManifest, manifest_checksum, read_manifest, write_manifest
    from inference.second_opinion import SecondOpinionSpec
    from phoneapp.services.model_versions import model_version_activate, model_version_register

    models = Path(settings.MODELS_DIR)
    member = models / "member-copy"
    shutil.copytree(models / "imagenet-zero-shot", member)
    asking = models / "asks-a-member"
    shutil.copytree(models / "imagenet-zero-shot", asking)
    spec = SecondOpinionSpec(model=member.name, manifest_sha256=manifest_checksum(member))
    write_manifest(
        asking,
        ModelManifest.from_dict(
            {**read_manifest(asking).to_dict(), "version": asking.name, "second_opinion": spec.to_dict()}
        ),
    )
    model_version_activate(version=model_version_register(model_dir=asking))
    assert client.get("/healthz").json()["model"] == "ok"

    shutil.rmtree(member)
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["model"] == "unavailable"
    assert "member-copy" not in response.content.decode()


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down_without_leaking_its_address(client: Client, settings) -> None:
    from tests import live_services

    with live_services.celery_app_sending_to("redis://127.0.0.1:1/0"):
        settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_health_report_says_database_down_for_an_unreachable_database(tmp_path: Path) -> None:
    """A connection to a database that cannot be opened (a real failed connect, not a mock)."""
    broken = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        broken["NAME"] = str(tmp_path / "missing-dir" / "db.sqlite3")
    else:
        broken["PORT"] = "1"
    wrapper = load_backend(broken["ENGINE"]).DatabaseWrapper(broken, alias="unreachable")
    try:
        report = health_report(connection=wrapper)
    finally:
        wrapper.close()

    assert report.database == "down"
    assert not report.healthy
    assert report.as_dict(figures=False)["status"] == "unavailable"


def test_every_variable_the_settings_read_is_in_the_env_example() -> None:
    """``.env.example`` is where operators learn what they can set (it says it shows every line's default);
    ``CONTENT_SECURITY_POLICY`` was missing from it."""
    settings_source = (REPO_ROOT / "phoneapp" / "settings.py").read_text()
    example = (REPO_ROOT / ".env.example").read_text()
    read = set(re.findall(r'\benv(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    assert len(read) > 40  # the pattern still finds the settings' reads
    assert {name for name in read if not re.search(rf"^(# )?{name}=", example, re.MULTILINE)} == set()


def test_a_retired_variable_still_set_is_named_by_the_system_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TORCH_THREADS`` is no longer read: an operator's old ``.env`` must say so, not be ignored silently."""
    from django.core import checks

    monkeypatch.delenv("TORCH_THREADS", raising=False)
    assert not [message for message in checks.run_checks() if message.id == "phoneapp.W001"]

    monkeypatch.setenv("TORCH_THREADS", "1")
    [warning] = [message for message in checks.run_checks() if message.id == "phoneapp.W001"]

    assert "TORCH_THREADS is set but no longer read" in warning.msg and "INFERENCE_THREADS" in (warning.hint or "")


def test_a_real_host_with_debug_on_only_by_default_is_refused_at_start() -> None:
    """An operator who sets ALLOWED_HOSTS and forgets DEBUG=0 served Django's debug pages (code, settings, every
    address) to the world: DEBUG is on by default for ``make run``. Saying DEBUG=1 keeps it on purpose."""
    refused = web_start({"ALLOWED_HOSTS": "phones.example.com"})
    assert refused.returncode != 0 and "Set DEBUG=0 to deploy, or DEBUG=1" in refused.stderr
    assert web_start({"ALLOWED_HOSTS": "phones.example.com", "DEBUG": "1"}).returncode == 0
    assert web_start({}).returncode == 0  # make run: no host set, the development default


def test_an_env_copied_from_the_example_with_a_real_host_still_refuses_debug_pages() -> None:
    """``.env.example`` set ``DEBUG=1`` (as "the default"), so an operator who copied it and set ALLOWED_HOSTS had
    DEBUG on by their own hand, as far as the start check could tell, and served debug pages."""
    example = (REPO_ROOT / ".env.example").read_text()
    copied = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.MULTILINE))
    assert len(copied) > 10  # the pattern still reads the example's settings

    refused = web_start({**copied, "ALLOWED_HOSTS": "phones.example.com"})

    assert refused.returncode != 0 and "Set DEBUG=0 to deploy" in refused.stderr


def test_settings_are_read_from_the_file_phonecheck_env_file_names(tmp_path: Path) -> None:
    """The tests' child processes read no ``.env`` (PHONECHECK_ENV_FILE empty); a named file is read instead of the
    checkout's: its DEBUG=1 is the operator's own choice, so the start check lets the real host through."""
    settings_file = tmp_path / "phonecheck.env"
    settings_file.write_text("DEBUG=1\n")

    assert web_start({"ALLOWED_HOSTS": "phones.example.com"}).returncode != 0
    assert web_start({"ALLOWED_HOSTS": "phones.example.com", "PHONECHECK_ENV_FILE": str(settings_file)}).returncode == 0
    mistyped = web_start({"PHONECHECK_ENV_FILE": str(tmp_path / "phonechek.env")})  # ran on defaults, unsaid
    assert mistyped.returncode != 0 and "PHONECHECK_ENV_FILE names" in mistyped.stderr

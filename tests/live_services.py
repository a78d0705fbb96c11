"""The real services the heavyweight tests talk to: PostgreSQL, Redis, Chromium and a celery worker process.

On a developer's machine a missing service skips those tests with the reason. In CI (``CI=true``) or with
``REQUIRE_SERVICES=1`` (set by ``.ci/run``) it fails them instead: a CI machine without Redis must not go green
by skipping the very tests that prove uploads reach a worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

REPO_ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
# Database 0 is what a developer's own worker uses; the tests take one nobody else does, and flush it.
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "15"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"

T = TypeVar("T")


def services_required() -> bool:
    """True in CI, where a missing service is a broken machine rather than a developer's choice."""
    ci = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    return ci or os.environ.get("REQUIRE_SERVICES", "").strip() == "1"


def service_unavailable(reason: str) -> NoReturn:
    """Skip the test on a developer's machine; fail it in CI."""
    if services_required():
        pytest.fail(f"{reason} (a failure, not a skip, because CI or REQUIRE_SERVICES=1 is set)", pytrace=False)
    pytest.skip(reason)


def port_open(host: str, port: int, *, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_url(*, db: int = TEST_REDIS_DB) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def redis_require_empty(url: str) -> None:
    """Make sure Redis answers at ``url`` and holds nothing from an earlier run (skips or fails otherwise)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    except redis.RedisError as error:
        service_unavailable(f"Redis is not reachable at {url} ({error}); start it or see README 'Tests'")
    finally:
        client.close()


def postgres_require(connection: Any) -> None:
    """The test database must be PostgreSQL: a worker process cannot see a SQLite in-memory test database."""
    if connection.vendor != "postgresql":
        service_unavailable(
            f"needs the suite to run on PostgreSQL (it runs on {connection.vendor}); "
            "`make test` uses PostgreSQL when one answers on 127.0.0.1:5432"
        )


def database_url_of(settings_dict: Mapping[str, Any]) -> str:
    """A ``DATABASE_URL`` for another process to open the same PostgreSQL database as this one."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def chromium_require() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        service_unavailable(
            f"{' and '.join(missing)} missing; install Debian's chromium and chromium-driver (.ci/run does)"
        )


CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # The machine has no internet: without these Chromium keeps trying to reach Google's services.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--window-size=1280,900",
)


def chromium_start(*, profile_dir: Path, extra_flags: Sequence[str] = ()) -> Chrome:
    """Headless Debian Chromium through Debian's chromedriver (Selenium downloads nothing), fresh profile.

    Skips or fails (see :func:`service_unavailable`) when Chromium is not installed. The caller quits it.
    """
    chromium_require()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


class ChromiumContexts:
    """One headless Chromium for many tests, each given a fresh browser context (a window of its own with its own
    cookies, storage, cache and permissions, as in a new incognito window) and the context disposed after it.

    Starting Chromium and quitting it cost about a second per test (68 browser tests); a context costs ~0.15 s.
    Contexts are made through the browser's own DevTools endpoint (a page's, which ``execute_cdp_cmd`` talks to,
    may not create them). The browser's first window stays on ``about:blank``; a test's window is the current one.
    """

    def __init__(self, *, profile_dir: Path, extra_flags: Sequence[str] = ()) -> None:
        import json
        import urllib.request

        import websocket

        self.driver = chromium_start(profile_dir=profile_dir, extra_flags=extra_flags)
        self.home = self.driver.current_window_handle
        address = self.driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        with urllib.request.urlopen(f"http://{address}/json/version", timeout=30) as response:
            endpoint = json.load(response)["webSocketDebuggerUrl"]
        self._devtools = websocket.create_connection(endpoint, timeout=60, suppress_origin=True)
        self._next_id = 0

    def _command(self, method: str, **params: Any) -> dict[str, Any]:
        import json

        self._next_id += 1
        self._devtools.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:  # nothing subscribes to events: only answers come, in order
            message = json.loads(self._devtools.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    @contextmanager
    def fresh_window(self) -> Iterator[Chrome]:
        """The browser, switched to a new window in a new context; the context and its windows are gone after."""
        context = self._command("Target.createBrowserContext")["browserContextId"]
        try:
            target = self._command("Target.createTarget", url="about:blank", browserContextId=context)["targetId"]
            self.driver.switch_to.window(target)
            self.driver.get_log("browser")  # the console messages of earlier tests' windows are not this test's
            yield self.driver
        finally:
            self.driver.switch_to.window(self.home)
            self._command("Target.disposeBrowserContext", browserContextId=context)

    def usable(self) -> bool:
        """False once Chromium or chromedriver has gone (crashed, or killed by a test)."""
        try:
            self.driver.switch_to.window(self.home)
            return self.driver.window_handles == [self.home]
        except Exception:  # any failure to talk to it means a new one
            return False

    def quit(self) -> None:
        try:
            self._devtools.close()
        finally:
            self.driver.quit()


def live_server_requests_finish(*, timeout: float = 30) -> None:
    """Wait until pytest-django's live server (one per test process) has no request in hand.

    A request a test's page left running (an upload the browser sent as the test ended) otherwise went on after
    the test, with its settings restored and its rows flushed: seen once, an upload of the test before classified
    by the shipped model of the repo's ``trained_models`` into the next test's database, whose own uploads then got
    that model's verdicts instead of the test default's."""
    import threading

    def all_answered() -> bool | None:
        running = [thread for thread in threading.enumerate() if thread.name.endswith("(process_request_thread)")]
        return True if not any(thread.is_alive() for thread in running) else None

    wait_until(all_answered, timeout=timeout, interval=0.05, what="the live server's requests to be answered")


def wait_until(probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str) -> T:
    """Call ``probe`` until it returns something other than ``None``; raise ``TimeoutError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@contextmanager
def celery_app_sending_to(broker_url: str) -> Iterator[Any]:
    """Point this process's Celery app at a real broker for the duration, then put it back.

    The app copies Django settings into ``app.conf`` once, so overriding ``settings.CELERY_BROKER_URL`` alone
    does not move it. ``app.close()`` drops the connection pool built for the old URL, before and after.
    """
    from phoneapp.celery import app

    saved = {"broker_url": app.conf.broker_url, "task_always_eager": app.conf.task_always_eager}
    celery_app_drop_connections(app)
    app.conf.broker_url = broker_url
    app.conf.task_always_eager = False
    try:
        yield app
    finally:
        celery_app_drop_connections(app)
        app.conf.update(saved)


def celery_app_drop_connections(app: Any) -> None:
    """Forget every broker connection of ``app`` so the next send connects afresh (to a new URL, or to a
    broker that was restarted).

    ``app.close()`` alone drops the connection pool but not the producer pool that ``app.amqp`` keeps, which
    ``send_task``/``apply_async`` and ``control.ping`` use: a second test would still publish to the first
    test's broker and hang in connection retries.
    """
    # Not force_close_all(): kombu keeps one producer pool per broker URL process-wide and would hand the
    # closed pool back for the same URL.
    app.amqp._producer_pool = None
    app.close()


@dataclass
class CeleryWorker:
    """A ``celery -A phoneapp worker`` child process, and where its output goes."""

    process: subprocess.Popen[bytes]
    node_name: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, app: Any, *, timeout: float) -> None:
        """Block until the worker answers a control ping (Django set up, model loaded, consuming)."""

        def answered() -> bool | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log_tail()}")
            # limit=1: back as soon as the one worker asked answers; without it every ping, answered or not, took
            # the whole second. An unanswered ping already waited that second: look again at once.
            replies = app.control.ping(destination=[self.node_name], timeout=1.0, limit=1)
            return True if replies else None

        try:
            wait_until(answered, timeout=timeout, interval=0.05, what=f"celery worker {self.node_name}")
        except TimeoutError as error:
            raise TimeoutError(f"{error}; its log:\n{self.log_tail()}") from error

    def stop(self, *, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL to the whole process group if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def process_start(command: Sequence[str], *, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``command`` from the repository root in its own process group (so a stuck one can be killed with its
    children), output and errors to ``log_path``, no stdin; the caller stops it."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def celery_env(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment for a Celery child: unbuffered output, the app's settings, ``env`` on top."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "phoneapp.settings", **env}


def celery_worker_start(
    *,
    env: Mapping[str, str],
    log_path: Path,
    queue: str = "classify",
    pool: str = "solo",
    concurrency: int = 1,
    name: str = "",
) -> CeleryWorker:
    """Start a worker with this interpreter, in its own process group, logging to ``log_path``: one-at-a-time
    (``--pool solo``) by default, or the Procfile's ``pool="prefork"`` with ``concurrency`` processes. ``name``
    tells several workers of one test apart."""
    node_name = f"phonecheck-test-{os.getpid()}{name}@{socket.gethostname()}"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "phoneapp",
        "worker",
        "-Q",
        queue,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "-n",
        node_name,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    process = process_start(command, env=celery_env(env), log_path=log_path)
    return CeleryWorker(process=process, node_name=node_name, log_path=log_path)


def shipped_model_activate(models_dir: str | Path) -> None:
    """Make the shipped default model (``trained_models/ACTIVE``) the active one in a test's models folder, which
    the suite pins to the zero-shot model. Live tests of the production set-up want it: its verdict pass gives
    the heat map's evidence (milliseconds), where the zero-shot model's heat maps are recomputed (1-2 s each on a
    busy machine, up to 13 s cold) and would make a test time the machine rather than what it tests."""
    (Path(models_dir) / "ACTIVE").write_text((REPO_ROOT / "trained_models" / "ACTIVE").read_text())


def celery_beat_start(*, env: Mapping[str, str], log_path: Path, schedule_path: Path) -> subprocess.Popen[bytes]:
    """``celery -A phoneapp beat`` (the periodic sweep) in its own process group; the caller stops it."""
    command = [sys.executable, "-m", "celery", "-A", "phoneapp", "beat", "--schedule", str(schedule_path)]
    return process_start([*command, "--loglevel", "INFO"], env=celery_env(env), log_path=log_path)

"""Shared fixtures: every test gets its own media and models folders, and users to act as."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from inference.export_cache import CACHE_DIR_ENV

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture
    from selenium.webdriver import Chrome

    from tests.live_services import ChromiumContexts

from tests.factories import client_for, make_user

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = REPO_ROOT / "trained_models"
TEST_DEFAULT_MODEL = "imagenet-zero-shot"
DATASET_DIR = REPO_ROOT.parent / "shared" / "datasets" / "phone-images"
# Where pytest_configure put this run's ONNX export cache.
EXPORT_CACHE_KEY = pytest.StashKey[str]()
# The pytest-xdist group of the tests that use the test Redis database (pytest_collection_modifyitems).
REDIS_GROUP = "redis"


def pytest_configure(config: pytest.Config) -> None:
    """The run's ONNX exports go to a folder of its own, shared by its test processes and the celery workers they
    start (they inherit the environment), and removed at the end: the tests wrote them to the developer's
    ``~/.cache/phonecheck``, and whether a version's export was already there changed what a test exercised."""
    if hasattr(config, "workerinput"):  # a pytest-xdist process: the environment came from the main one
        return
    folder = tempfile.mkdtemp(prefix="phonecheck-test-exports-")
    config.stash[EXPORT_CACHE_KEY] = folder
    os.environ[CACHE_DIR_ENV] = folder  # inference outside Django
    os.environ["INFERENCE_CACHE_DIR"] = folder  # the settings of the celery workers tests start


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(EXPORT_CACHE_KEY, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``) the tests that use the test Redis
    database run in one process, one after another: each flushes that database and starts celery workers that
    consume its queues, so two at once would flush or take each other's tasks. Every other test runs wherever a
    process is free."""
    for item in items:
        if item.get_closest_marker("integration") or "redis_broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(REDIS_GROUP))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """pytest-xdist groups by a suffix it adds to each grouped test's id; pytest 9.2 moved the id where xdist 3.8
    does not write, and the groups silently fell apart (two processes flushed each other's Redis database). Refuse to
    run when that happens again, rather than fail at random further on.

    Besides the Redis group, a module whose module-scoped fixture is costly (a model trained or a process started
    once for the module) puts its tests in a group of their own (``pytestmark = pytest.mark.xdist_group(...)``):
    spread over both processes, each built the fixture (a scene model trained twice). A test in two groups would
    be put in a third, joined one, outside the Redis group: refused too."""
    if not session.config.getoption("loadgroup", default=False):
        return
    ungrouped = []
    for item in session.items:
        names = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name")) for mark in item.iter_markers("xdist_group")
        }
        if names and (len(names) > 1 or not item.nodeid.endswith(f"@{names.pop()}")):
            ungrouped.append(item.nodeid)
    if ungrouped:
        message = (
            f"pytest-xdist did not group {len(ungrouped)} tests as marked (first: {ungrouped[0]}): a test in two "
            "groups, or the installed pytest and pytest-xdist do not work together; see requirements-dev.txt"
        )
        print(message, file=sys.stderr)  # raised in an xdist process, the error itself shows as an INTERNALERROR
        raise pytest.UsageError(message)


@pytest.fixture(autouse=True)
def login_window_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The login throttle counts in clock-aligned windows: ten wrong passwords sent across a minute's end were
    counted in two windows, and the test's eleventh got through (a run at 12:44:59). Tests see one moment, mid-minute;
    the tests about windows move it themselves."""
    from types import SimpleNamespace

    from phoneapp.services import login_attempts

    monkeypatch.setattr(login_attempts, "time", SimpleNamespace(time=lambda: 1_700_000_010.0))  # 30 s into a minute


class SharedModelsCopy:
    """One copy of the shipped ``trained_models/`` per test run, which each test's models folder hard-links.

    Copying 39 MB for each of ~1,000 tests cost ~50 ms a test (~50 s and 39 GB of writes a run); a folder of links
    costs 2 ms. A link shares the file itself, so a test that rewrites a model file in place (``write_text`` on a
    manifest) would change every later test's copy: such tests are marked ``writes_model_files`` and get a real
    copy, and :meth:`check_unchanged` fails any unmarked test that did it (and puts the copy right again).
    Replacing, renaming or deleting a file, or adding one, only changes the test's own folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._copy_from_repo()

    def _copy_from_repo(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.copytree(SHIPPED_MODELS, self.folder, ignore=shutil.ignore_patterns("*.md", "*.svg", "*.png", "reports"))
        self._state = self._files_state()

    def _files_state(self) -> dict[str, tuple[int, int]]:
        state = {}
        for path in sorted(self.folder.rglob("*")):
            info = path.stat()  # one stat a file: this runs after every test
            if stat.S_ISREG(info.st_mode):
                state[str(path.relative_to(self.folder))] = (info.st_size, info.st_mtime_ns)
        return state

    def place(self, target: Path, *, writable: bool) -> None:
        """The shipped models at ``target``: files linked, or copied for a test that rewrites them in place."""
        shutil.copytree(self.folder, target, copy_function=shutil.copy2 if writable else os.link)

    def check_same_as_shipped(self) -> None:
        """At the end of the run, byte for byte: a rewrite that kept a file's size and put its time back (``os.utime``)
        passes :meth:`check_unchanged`, and would have changed what every later test read."""
        changed = [
            name for name in self._state if (self.folder / name).read_bytes() != (SHIPPED_MODELS / name).read_bytes()
        ]
        assert not changed, f"tests rewrote shared model files in place, unnoticed until the end: {changed}"

    def check_unchanged(self, test_name: str) -> None:
        if self._files_state() == self._state:
            return
        self._copy_from_repo()
        pytest.fail(
            f"{test_name} rewrote a model file in place, which every test's models folder shares through a hard "
            "link: mark it @pytest.mark.writes_model_files (tests/conftest.py, SharedModelsCopy)."
        )


@pytest.fixture(scope="session")
def shared_models_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedModelsCopy]:
    shared = SharedModelsCopy(tmp_path_factory.mktemp("shipped") / "trained_models")
    yield shared
    shared.check_same_as_shipped()


@pytest.fixture(autouse=True)
def isolated_storage(
    settings: SettingsFixture, tmp_path: Path, shared_models_copy: SharedModelsCopy, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """Uploads and model versions written by a test land in a temporary folder, never in the repo."""
    media = tmp_path / "media"
    models = tmp_path / "trained_models"
    media.mkdir()
    writable = request.node.get_closest_marker("writes_model_files") is not None
    shared_models_copy.place(models, writable=writable)
    # Tests pin the zero-shot model as the default whatever trained_models/ACTIVE ships: it loads fastest, its
    # outputs do not change when a better model is trained, and the fault tests hide its files by name. The
    # shipped default itself is tested in test_inference_core.py.
    (models / "ACTIVE").unlink()  # a link to the shared copy's: written in place, it would change that one
    (models / "ACTIVE").write_text(f"{TEST_DEFAULT_MODEL}\n")
    settings.MEDIA_ROOT = str(media)
    settings.MODELS_DIR = models
    settings.ACTIVE_MODEL_CHECK_SECONDS = 0
    settings.INFERENCE_CACHE_DIR = os.environ.get(CACHE_DIR_ENV, "")  # the run's own (pytest_configure)
    settings.CELERY_BROKER_URL = ""
    # PBKDF2's deliberate slowness costs over a second per test user on this box; tests need no real hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Upload rate-limit counters live in the cache; a test must not inherit another test's budget.
    from django.core.cache import cache

    cache.clear()
    from phoneapp.services.dispatch import broker_unreachable_forget

    broker_unreachable_forget()  # a broker another test made unreachable is tried again
    yield tmp_path
    from phoneapp.resident_model import resident_model

    resident_model.forget()
    if not writable:
        shared_models_copy.check_unchanged(request.node.nodeid)


@pytest.fixture(autouse=True)
def switches_in_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newly active version is loaded at the next prediction, as when its ONNX export is cached. Each run's export
    cache starts empty (pytest_configure), and whether a test's version was exported yet would depend on which tests
    ran before: where it was not, the process would keep the version it holds while it converts the new one in the
    background (phoneapp/resident_model.py), which the tests of that switch ask for themselves."""
    monkeypatch.setattr("phoneapp.resident_model.classifier_export_missing", lambda **_: False)


@pytest.fixture
def deployed_models(isolated_storage: Path) -> None:
    """The database as a deploy leaves it: ``manage.py sync_models`` registered the shipped models (the test's
    MODELS_DIR copy) and activated the tests' default. Needs a test with database access."""
    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()


@pytest.fixture
def redis_broker(settings: SettingsFixture) -> str:
    """The services pointed at the test Redis database (as a broker URL); skipped without Redis."""
    from tests import live_services

    url = live_services.redis_url()
    live_services.redis_require_empty(url)
    settings.CELERY_BROKER_URL = url
    return url


@pytest.fixture
def browser_flags() -> tuple[str, ...]:
    """Chromium flags on top of the offline-safe ones; a module that takes screenshots overrides this fixture."""
    return ()


@pytest.fixture(scope="session")
def chromium_browsers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, ...], ChromiumContexts]]:
    """This test process's headless Chromiums, one per set of flags, started when first asked for."""
    browsers: dict[tuple[str, ...], ChromiumContexts] = {}
    yield browsers
    for started in browsers.values():
        started.quit()


@pytest.fixture
def browser(
    chromium_browsers: dict[tuple[str, ...], ChromiumContexts],
    tmp_path_factory: pytest.TempPathFactory,
    browser_flags: tuple[str, ...],
) -> Iterator[Chrome]:
    """Headless Chromium through Debian's chromedriver (nothing downloaded), in a window of a fresh browser context:
    nothing (cookies, storage, cache, permissions, emulation, console messages) comes from another test. Chromium
    itself is shared by the process's tests with the same flags (live_services.ChromiumContexts); a new one is
    started if it has gone."""
    from tests import live_services

    started = chromium_browsers.get(browser_flags)
    if started is not None and not started.usable():
        with contextlib.suppress(Exception):  # what is left of it
            started.quit()
        started = None
    if started is None:
        profile = tmp_path_factory.mktemp("chromium-profile")
        started = live_services.ChromiumContexts(profile_dir=profile, extra_flags=browser_flags)
        chromium_browsers[browser_flags] = started
    with started.fresh_window() as driver:
        yield driver
    # The window's connections are closed with its context; what the page left running ends before the test does.
    live_services.live_server_requests_finish()


@pytest.fixture
def alice(db: None) -> User:
    return make_user("alice")


@pytest.fixture
def bob(db: None) -> User:
    return make_user("bob")


@pytest.fixture
def reviewer(db: None) -> User:
    return make_user("rita", staff=True, superuser=True)


@pytest.fixture
def second_reviewer(db: None) -> User:
    """Another staff member, for what two reviewers at once do."""
    return make_user("sam", staff=True)


@pytest.fixture
def alice_client(alice: User) -> Client:
    return client_for(alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return client_for(bob)


@pytest.fixture
def dataset_dir() -> Path:
    """The shared labelled pictures; tests that need them are skipped where they are absent."""
    if not (DATASET_DIR / "manifest.csv").is_file():
        pytest.skip(f"labelled dataset not present at {DATASET_DIR}")
    return DATASET_DIR


@pytest.fixture
def heatmaps_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a broker the 'where is the phone' overlay is drawn in-process after every verdict; tests that do not
    look at overlays switch it off to stay fast."""
    monkeypatch.setattr("phoneapp.services.classification.heatmap_enqueue", lambda **_: None)

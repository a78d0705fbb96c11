"""A process that serves the model takes its share of the cores when INFERENCE_THREADS is not set: a worker's
processes divide them, every other process has them all; a value set always wins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from phoneapp import serving_threads
from phoneapp.celery import _share_the_cores_among_processes
from phoneapp.services import model_versions

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings as SettingsFixture


@pytest.fixture(autouse=True)
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Eight cores whatever this machine has, and no worker recorded before or after each test."""
    monkeypatch.setattr(serving_threads, "available_cores", lambda: 8)
    serving_threads.worker_processes_set(1)
    yield
    serving_threads.worker_processes_set(1)


def worker_starting(*, pool: object, concurrency: object) -> None:
    """What Celery's ``worker_init`` hands the app before the pool forks."""
    _share_the_cores_among_processes(sender=SimpleNamespace(pool_cls=pool, concurrency=concurrency))


def test_a_process_that_is_not_a_worker_takes_every_core() -> None:
    assert serving_threads.serving_threads_default() == 8


@pytest.mark.parametrize(
    ("pool", "concurrency", "threads"),
    [
        ("prefork", 2, 4),  # the Procfile's worker: two processes, four threads each
        ("prefork", 3, 2),
        ("prefork", 16, 1),  # more processes than cores: still one thread each
        ("prefork", "auto", 1),  # Celery starts one process per core
        ("solo", 2, 8),  # one process runs the tasks whatever the concurrency says
        ("threads", 4, 8),
    ],
)
def test_a_workers_processes_divide_the_cores(pool: str, concurrency: object, threads: int) -> None:
    worker_starting(pool=pool, concurrency=concurrency)
    assert serving_threads.serving_threads_default() == threads


def test_a_pool_given_as_a_class_is_recognised() -> None:
    from celery.concurrency.solo import TaskPool

    worker_starting(pool=TaskPool, concurrency=4)
    assert serving_threads.serving_threads_default() == 8


def test_inference_threads_when_set_wins_over_the_share(
    settings: SettingsFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[int | None] = []
    monkeypatch.setattr(model_versions, "load", lambda *args, threads=None, **kwargs: asked.append(threads))
    worker_starting(pool="prefork", concurrency=2)
    settings.INFERENCE_THREADS = 0
    model_versions.classifier_load(model_dir=tmp_path)
    settings.INFERENCE_THREADS = 3
    model_versions.classifier_load(model_dir=tmp_path)
    assert asked == [4, 3]

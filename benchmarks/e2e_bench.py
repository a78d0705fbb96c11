"""End to end on real services: gunicorn serving the API, PostgreSQL, Redis and one celery worker process.

Everything runs in its own corner so nobody else's work is disturbed: database ``phonecheck_bench`` (dropped and
created again), Redis database 14 (flushed), a temporary media folder. The web server and the worker run in
production mode (``DEBUG=0``), as deployed.

A verdict's time is read from the database: the worker stamps ``processed`` as it writes the verdict, so the
latency of an upload is ``processed`` minus the moment the client started sending it, with no polling delay in
the figure (this process polls only to know when to go on).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._cpu import cpu_by_pid, database_backend_pids
from benchmarks._stack import free_port, wait_for_port
from benchmarks._stats import percentile

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DATABASE = "phonecheck_bench"
# Overridable: a test suite run with the same TEST_REDIS_DB flushes the broker under a run, which then stalls.
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))


def memory_mb(pid: int) -> dict[str, float]:
    """Resident (VmRSS), peak resident (VmHWM) and proportional (Pss: shared pages split) memory of a process."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            figures["Pss"] = int(line.split()[1]) / 1024
    return figures


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.extend(int(child) for child in (task / "children").read_text().split())
    return children


@dataclass
class Bench:
    """The running services and what the client needs to talk to them."""

    env: dict[str, str]
    media: Path
    base_port: int
    token: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="phonecheck-bench-logs-")))

    def start(
        self, name: str, command: list[str], *, python: str = sys.executable, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [python, *command],
            cwd=REPO_ROOT,
            env={**os.environ, **self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()


def _reset_database() -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")


def _reset_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def bench_env(*, media: Path, broker: str, log_level: str = "INFO") -> dict[str, str]:
    """The environment of the benchmark's processes: production settings on the benchmark's own services."""
    return {
        "DJANGO_SETTINGS_MODULE": "phoneapp.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}",
        "CELERY_BROKER_URL": broker,
        "MEDIA_ROOT": str(media),
        "DEBUG": "0",
        # Production refuses a key shorter than 50 characters (phoneapp/settings.py).
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "UPLOAD_RATE_LIMIT": "1000000/minute",
        "LOG_LEVEL": log_level,
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def services(*, model: str | None = None, web_workers: int = 2) -> Iterator[Bench]:
    """A fresh database, broker and media folder, migrated, with gunicorn serving the API; stops it all after."""
    media = Path(tempfile.mkdtemp(prefix="phonecheck-bench-media-"))
    broker = f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"
    port = free_port()
    env = bench_env(media=media, broker=broker)
    _reset_database()
    _reset_redis(broker)
    bench = Bench(env=env, media=media, base_port=port)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if migrate.returncode:
        raise RuntimeError(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
    os.environ.update(env)  # this process reads the same database to see the verdicts
    import django

    django.setup()
    from django.contrib.auth.models import User

    from phoneapp.models import ModelVersion
    from phoneapp.services.api_tokens import api_token_regenerate
    from phoneapp.services.model_versions import model_version_activate, model_versions_sync_from_disk

    model_versions_sync_from_disk()
    if model:
        model_version_activate(version=ModelVersion.objects.get(name=model))
    user = User.objects.create_user("bench", password=uuid.uuid4().hex)
    bench.token = api_token_regenerate(user=user)
    try:
        bench.start(
            "web",
            [
                "-m",
                "gunicorn",
                "phoneapp.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(web_workers),
                "--timeout",
                "60",
            ],
        )
        wait_for_port(port, timeout=60, what="gunicorn")
        yield bench
    finally:
        bench.stop_all()
        _reset_redis(broker)
        shutil.rmtree(media, ignore_errors=True)


def multipart_upload(data: bytes, name: str) -> tuple[str, bytes]:
    """The content type and body of a ``POST /api/uploads/`` sending ``data`` as the one ``image`` part."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="image"; filename="{name}"\r\n'.encode(),
            b"Content-Type: image/jpeg\r\n\r\n",
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return f"multipart/form-data; boundary={boundary}", body


class ApiClient:
    """One client: a keep-alive-if-possible HTTP connection that sends pictures to ``POST /api/uploads/``."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token

    def upload(self, data: bytes, name: str) -> int:
        content_type, body = multipart_upload(data, name)
        headers = {
            "Content-Type": content_type,
            "Authorization": f"Token {self.token}",
            "Host": "127.0.0.1",
        }
        self.connection.request("POST", "/api/uploads/", body=body, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != 201:
            raise RuntimeError(f"upload refused: HTTP {response.status} {payload[:300]!r}")
        return int(json.loads(payload)[0]["id"])


def _verdicts(upload_ids: list[int]) -> dict[int, tuple[str, float | None]]:
    from phoneapp.models import Upload

    rows = Upload.objects.filter(pk__in=upload_ids).values_list("pk", "status", "processed")
    return {pk: (status, processed.timestamp() if processed else None) for pk, status, processed in rows}


def _wait_finished(upload_ids: list[int], *, timeout: float, interval: float) -> dict[int, tuple[str, float | None]]:
    deadline = time.monotonic() + timeout
    while True:
        verdicts = _verdicts(upload_ids)
        if len(verdicts) == len(upload_ids) and all(status in ("done", "failed") for status, _ in verdicts.values()):
            return verdicts
        if time.monotonic() > deadline:
            return verdicts
        time.sleep(interval)


def start_worker(
    bench: Bench,
    *,
    pool: str,
    python: str,
    concurrency: int = 1,
    threads: int | None = None,
    node: int = 0,
    queues: str = "classify",
) -> subprocess.Popen[bytes]:
    """One celery worker node on ``queues``; ``threads`` sets each process's ONNX Runtime threads."""
    return bench.start(
        f"worker{node or ''}",
        [
            "-m",
            "celery",
            "-A",
            "phoneapp",
            "worker",
            "-Q",
            queues,
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "-n",
            f"bench-{os.getpid()}-{node}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        python=python,
        env={"INFERENCE_THREADS": str(threads)} if threads else None,
    )


def measure_e2e(
    pictures: list[bytes],
    *,
    sequential: int = 40,
    concurrent: int = 500,
    clients: int = 8,
    pool: str = "solo",
    worker_python: str = sys.executable,
    model: str | None = None,
    concurrency: int = 1,
    worker_threads: int | None = None,
    worker_nodes: int = 1,
    worker_queues: str = "classify",
) -> dict[str, Any]:
    """Worker start-up, single uploads one after another, then ``concurrent`` uploads from ``clients`` clients.

    ``worker_nodes``: that many worker nodes (each ``concurrency`` processes), e.g. two ``solo`` nodes instead of
    one ``prefork`` node of two processes; their CPU and memory are summed. ``worker_queues`` with ``heatmaps``:
    the CPU clocks are read once the heat-map tasks are done too (none waiting, none unacknowledged)."""
    needed = 1 + sequential + concurrent
    if len(pictures) < needed:
        raise ValueError(f"need {needed} distinct pictures, got {len(pictures)}")
    result: dict[str, Any] = {
        "worker_pool": pool,
        "worker_nodes": worker_nodes,
        "worker_concurrency": concurrency,
        "worker_threads": worker_threads or int(os.environ.get("INFERENCE_THREADS", "1")),
        "worker_python": worker_python,
        "worker_queues": worker_queues,
    }
    with services(model=model) as bench:
        client = ApiClient(bench.base_port, bench.token)
        # Start-up: an upload is already waiting when the worker process starts; ready = its verdict is in.
        first = client.upload(pictures[0], "first.jpg")
        started = time.time()
        workers = [
            start_worker(
                bench,
                pool=pool,
                python=worker_python,
                concurrency=concurrency,
                threads=worker_threads,
                node=node,
                queues=worker_queues,
            )
            for node in range(worker_nodes)
        ]
        verdicts = _wait_finished([first], timeout=180, interval=0.05)
        status, processed = verdicts.get(first, ("missing", None))
        if status != "done" or processed is None:
            raise RuntimeError(f"worker never classified the first upload ({status}); log in {bench.logs}")
        result["worker_ready_s"] = round(processed - started, 2)

        latencies = []
        for index in range(sequential):
            sent = time.time()
            upload_id = client.upload(pictures[1 + index], f"seq-{index}.jpg")
            status, processed = _wait_finished([upload_id], timeout=60, interval=0.005)[upload_id]
            if status != "done" or processed is None:
                raise RuntimeError(f"upload {upload_id} ended {status}; log in {bench.logs}")
            latencies.append((processed - sent) * 1000)
        result["e2e_ms_p50"] = round(percentile(latencies, 0.5), 1)
        result["e2e_ms_p95"] = round(percentile(latencies, 0.95), 1)

        drain_heatmaps = "heatmaps" in worker_queues.split(",")
        if drain_heatmaps:  # the sequential uploads' heat maps are not the concurrent ones' CPU
            _wait_tasks_drained(bench.env["CELERY_BROKER_URL"], timeout=300)
        web = bench.processes[0].pid
        roles: dict[str, Callable[[], list[int]]] = {
            "worker": lambda: [pid for worker in workers for pid in (worker.pid, *child_pids(worker.pid))],
            "web": lambda: [web, *child_pids(web)],
            "clients": lambda: [os.getpid()],
            # The machine's own servers: on a shared machine this counts other users' load too.
            "postgres": partial(database_backend_pids, BENCH_DATABASE),
            "redis": lambda: _processes_named("redis-server"),
        }
        before = {role: cpu_by_pid(pids()) for role, pids in roles.items()}
        result.update(_concurrent(bench, pictures[1 + sequential : needed], clients=clients))
        if drain_heatmaps:
            result["heatmap_tasks_drained_s"] = _wait_tasks_drained(bench.env["CELERY_BROKER_URL"], timeout=300)
        # CPU per upload does not depend on what else the machine runs: it says what 2 idle cores could carry.
        # A process that started meanwhile (a new database connection) counts from zero.
        result["e2e_cpu_ms_per_upload"] = {
            role: round(
                sum(cpu - before[role].get(pid, 0.0) for pid, cpu in cpu_by_pid(pids()).items()) * 1000 / concurrent,
                1,
            )
            for role, pids in roles.items()
        }
        result.update(_worker_model_share(bench.logs, result.pop("e2e_upload_ids"), result["e2e_cpu_ms_per_upload"]))
        result.update(_worker_memory([worker.pid for worker in workers], pool=pool))
        result["logs"] = str(bench.logs)
    return result


def _processes_named(name: str) -> list[int]:
    """Pids of the processes whose command name is ``name``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _wait_tasks_drained(broker: str, *, timeout: float) -> float:
    """Seconds until no task waits on ``heatmaps`` and none is unacknowledged (taken but not finished: heat-map
    tasks acknowledge late); raises if that takes over ``timeout``."""
    import redis

    client = redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=5)
    started = time.monotonic()
    try:
        while client.llen("heatmaps") or client.hlen("unacked"):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"heat-map tasks still running after {timeout} s")
            time.sleep(0.2)
    finally:
        client.close()
    return round(time.monotonic() - started, 1)


def _concurrent(bench: Bench, pictures: list[bytes], *, clients: int) -> dict[str, Any]:
    upload_ids: list[int] = []
    sent_at: dict[int, float] = {}
    errors: list[str] = []
    lock = threading.Lock()
    shares = [pictures[index::clients] for index in range(clients)]

    def send(share: list[bytes], number: int) -> None:
        client = ApiClient(bench.base_port, bench.token)
        for index, data in enumerate(share):
            sent = time.time()
            try:
                upload_id = client.upload(data, f"c{number}-{index}.jpg")
            except Exception as error:  # counted as lost, reported below
                with lock:
                    errors.append(str(error))
                continue
            with lock:
                upload_ids.append(upload_id)
                sent_at[upload_id] = sent

    started = time.time()
    threads = [threading.Thread(target=send, args=(share, number)) for number, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sending_s = time.time() - started
    verdicts = _wait_finished(upload_ids, timeout=600, interval=0.2)
    done = {pk: processed for pk, (status, processed) in verdicts.items() if status == "done" and processed}
    failed = sum(1 for status, _ in verdicts.values() if status == "failed")
    finished = max(done.values()) if done else time.time()
    latencies = [(done[pk] - sent_at[pk]) * 1000 for pk in done]
    return {
        "e2e_images_per_s": round(len(done) / (finished - started), 1),
        "e2e_uploads_sent": len(pictures),
        "e2e_uploads_done": len(done),
        "e2e_uploads_failed": failed,
        "e2e_uploads_lost": len(pictures) - len(done) - failed,
        "e2e_upload_errors": errors[:5],
        "e2e_concurrent_sending_s": round(sending_s, 1),
        "e2e_concurrent_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "e2e_upload_ids": sorted(done),
    }


def _worker_model_share(logs: Path, upload_ids: list[int], cpu_per_upload: dict[str, float]) -> dict[str, Any]:
    """The model's CPU per upload in the workers (decode, preprocessing and forward pass, as each worker process
    measured and logged it: ``inference_cpu_ms`` of "upload classified") and the workers' CPU beyond it (claim,
    thumbnail, verdict write, Celery's receive, dispatch and acknowledgement: issue 17's "worker overhead")."""
    wanted, model_ms = set(upload_ids), []
    for log in sorted(logs.glob("worker*.log")):
        for line in log.read_text(errors="replace").splitlines():
            fields = _classified_fields(line)
            if fields and int(fields.get("upload_id", -1)) in wanted and "inference_cpu_ms" in fields:
                model_ms.append(float(fields["inference_cpu_ms"]))
    if not model_ms or len(model_ms) != len(wanted):
        return {"worker_model_cpu_ms_per_upload": None, "worker_overhead_cpu_ms_per_upload": None}
    model = statistics.fmean(model_ms)
    return {
        "worker_model_cpu_ms_per_upload": round(model, 1),
        "worker_overhead_cpu_ms_per_upload": round(cpu_per_upload["worker"] - model, 1),
    }


def _classified_fields(line: str) -> dict[str, Any] | None:
    """The fields of an "upload classified" log line in either of the app's formats (``LOG_FORMAT`` plain:
    ``key=value`` pairs; json: one object), or None for any other line."""
    if line.startswith("{"):
        try:
            event = json.loads(line)
        except ValueError:
            return None
        return event if isinstance(event, dict) and event.get("message") == "upload classified" else None
    if " upload classified " not in line:
        return None
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def _worker_memory(nodes: list[int], *, pool: str) -> dict[str, Any]:
    """The workers' memory; with prefork, each parent plus the children that hold the model."""
    pids = [pid for node in nodes for pid in ((node, *child_pids(node)) if pool == "prefork" else (node,))]
    per_process = {str(p): {k: round(v, 1) for k, v in memory_mb(p).items()} for p in pids}
    return {
        "worker_rss_mb": round(sum(figures["VmRSS"] for figures in per_process.values()), 1),
        "worker_peak_rss_mb": round(sum(figures["VmHWM"] for figures in per_process.values()), 1),
        "worker_pss_mb": round(sum(figures["Pss"] for figures in per_process.values()), 1),
        "worker_memory_by_process": per_process,
    }

"""Bounded load test: thousands of uploads through the API into PostgreSQL + Redis + one celery worker.

    .venv/bin/python -m benchmarks.run load                    # 2,000 uploads, 8 concurrent clients
    .venv/bin/python -m benchmarks.run load --uploads 200      # a quick look
    .venv/bin/python -m benchmarks.run load --uploads 600 --rate 6   # steady arrivals below capacity
    .venv/bin/python -m benchmarks.run load --rates 6,10,14,18       # the knee: steady rates one after another

Everything it starts is its own and on loopback only: a fresh PostgreSQL database (created, migrated, dropped
at the end), a throwaway ``redis-server`` on a free port (no persistence), gunicorn for the web app and one
``celery -A phoneapp worker`` node, all in production mode (``DEBUG=0``) in a temporary folder. The run stops by
itself: every phase has a deadline, and the whole run is capped by ``--max-seconds``; everything started is
stopped and removed on the way out, success or not.

It checks what the issue asks: every upload ends ``done``, none is lost (every id the API returned is a row,
every row of the load user was returned once), none is duplicated (ids unique, one row per picture sent, no
upload classified twice), and reports uploads per second accepted by the API and the p50/p95 time to verdict
(worker's ``processed`` stamp minus the moment the client started sending). Each phase also reports the CPU time
per upload of every service (gunicorn, the worker, Redis, this database's PostgreSQL backends; read from ``/proc``)
and the load average: on a shared machine wall times depend on the neighbours, CPU per upload does not, and
``1000 / worker ms`` is what one worker core carries.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from benchmarks._cpu import CpuMeter, database_backend_pids, process_group
from benchmarks._stack import free_port, port_open
from benchmarks._stats import percentile
from benchmarks.pictures import drawn_picture

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class LoadTestError(RuntimeError):
    pass


@dataclass
class Sent:
    upload_id: int
    started: float  # wall clock (time.time) when the client began sending
    answered: float


def wait_for(what: str, probe: Callable[[], bool], *, timeout: float, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise LoadTestError(f"gave up waiting {timeout:.0f}s for {what}")
        time.sleep(interval)


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Stack:
    """PostgreSQL database, Redis, gunicorn and one worker, started in order and stopped in reverse."""

    def __init__(self, workdir: Path, *, worker_concurrency: int, web_workers: int) -> None:
        self.workdir = workdir
        self.database = f"phonecheck_load_{os.getpid()}"
        self.redis_port = free_port()
        self.web_port = free_port()
        self.worker_concurrency = worker_concurrency
        self.web_workers = web_workers
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        models = workdir / "trained_models"
        shutil.copytree(REPO_ROOT / "trained_models", models, ignore=shutil.ignore_patterns("reports", "*.png"))
        (workdir / "media").mkdir()
        self.env = {
            **{key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")},
            "DJANGO_SETTINGS_MODULE": "phoneapp.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.database}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "MEDIA_ROOT": str(workdir / "media"),
            "MODELS_DIR": str(models),
            "UPLOAD_RATE_LIMIT": "1000000/minute",
            "INFERENCE_THREADS": "1",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append((name, process))
        return process

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def psql(self, sql: str, database: str = "postgres") -> str:
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-Atqc", sql],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    def start(self) -> None:
        self.psql(f'CREATE DATABASE "{self.database}"')
        self.redis_start()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO_ROOT,
            env=self.env,
            check=True,
            timeout=300,
        )
        self._spawn(
            "web",
            [
                sys.executable, "-m", "gunicorn", "phoneapp.wsgi:application",
                "--bind", f"127.0.0.1:{self.web_port}", "--workers", str(self.web_workers),
                "--threads", "4", "--timeout", "120",
            ],
        )  # fmt: skip
        self.worker_start()
        wait_for("gunicorn", lambda: port_open(self.web_port), timeout=120)

    def redis_start(self) -> subprocess.Popen[bytes]:
        """Redis on the stack's port, without persistence (a restart loses every queued message)."""
        redis = shutil.which("redis-server")
        if redis is None:
            raise LoadTestError("redis-server is not installed")
        process = self._spawn(
            "redis",
            [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        )
        wait_for("redis", lambda: port_open(self.redis_port), timeout=20)
        return process

    def worker_command(self) -> list[str]:
        """The Procfile's worker (both queues: heat maps take worker time too); benchmarks/broker_outage.py runs it
        through a wrapper."""
        return [
            sys.executable, "-m", "celery", "-A", "phoneapp", "worker", "-Q", "classify,heatmaps",
            "--concurrency", str(self.worker_concurrency), "-n", f"load-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip

    def worker_start(self, log_name: str = "worker") -> subprocess.Popen[bytes]:
        """Start the worker, logging to ``<log_name>.log``; return once it says it is ready."""
        process = self._spawn(log_name, self.worker_command())
        wait_for("the worker", lambda: " ready." in self.log_tail(log_name, 200), timeout=300, interval=0.5)
        return process

    def heatmaps_waiting(self) -> int:
        """Heat-map tasks still in the broker's queue (0 when the worker has taken them all)."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "LLEN", "heatmaps"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return int(out) if out.isdigit() else 0

    def cpu_roles(self) -> dict[str, Callable[[], list[int]]]:
        """For :class:`benchmarks._cpu.CpuMeter`: each service's processes (its process group), this database's
        PostgreSQL backends, and this process (the clients)."""
        roles: dict[str, Callable[[], list[int]]] = {
            name: partial(process_group, process.pid) for name, process in self.processes if process.poll() is None
        }
        roles["postgres"] = partial(database_backend_pids, self.database)
        roles["clients"] = lambda: [os.getpid()]
        return roles

    def token(self) -> str:
        code = (
            "import django; django.setup();"
            "from django.contrib.auth.models import User;"
            "from phoneapp.services.api_tokens import api_token_regenerate;"
            "user = User.objects.create_user('load', password=None);"
            "print(api_token_regenerate(user=user))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, env=self.env, check=True, capture_output=True, text=True
        )
        return result.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _name, process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        try:
            self.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except subprocess.SubprocessError as error:
            print(f"warning: could not drop {self.database}: {error}", file=sys.stderr)


def upload_all(
    port: int, token: str, bodies: list[bytes], clients: int, deadline: float, rate: float | None = None
) -> list[Sent]:
    """Send every picture once with ``clients`` threads, each on its own keep-alive connection; with ``rate``,
    upload ``i`` is not sent before ``i / rate`` seconds (a steady arrival rate instead of a burst)."""
    sent: list[Sent] = []
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))
    schedule_start = time.time()

    def client_loop() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                if rate:
                    time.sleep(max(0.0, schedule_start + index / rate - time.time()))
                body, content_type = multipart(f"load-{index}.jpg", bodies[index])
                headers = {"Authorization": f"Token {token}", "Content-Type": content_type}
                started = time.time()
                for attempt in range(3):
                    try:
                        connection.request("POST", "/api/uploads/", body=body, headers=headers)
                        response = connection.getresponse()
                        payload = response.read()
                        break
                    except (ConnectionError, http.client.HTTPException):
                        connection.close()
                        if attempt == 2:
                            raise
                if response.status != 201:
                    raise LoadTestError(f"upload {index} answered {response.status}: {payload[:200]!r}")
                [created] = json.loads(payload)
                with lock:
                    sent.append(Sent(upload_id=created["id"], started=started, answered=time.time()))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    if len(sent) != len(bodies):
        raise LoadTestError(f"only {len(sent)} of {len(bodies)} uploads were sent before the deadline")
    return sent


def rows_of_load_user(stack: Stack) -> list[tuple[int, str, int, float | None, str]]:
    out = stack.psql(
        "SELECT u.id, u.status, u.attempts, EXTRACT(EPOCH FROM u.processed), u.predicted_label "
        "FROM phoneapp_upload u JOIN auth_user a ON a.id = u.owner_id WHERE a.username = 'load'",
        database=stack.database,
    )
    rows = []
    for line in out.splitlines():
        upload_id, status, attempts, processed, label = line.split("|")
        rows.append((int(upload_id), status, int(attempts), float(processed) if processed else None, label))
    return rows


def measure_phase(
    stack: Stack, token: str, bodies: list[bytes], *, clients: int, rate: float | None, deadline: float
) -> tuple[dict[str, object], list[int]]:
    """Send ``bodies`` (at ``rate`` per second, or as a burst), wait for every verdict; the figures and the ids."""
    loadavg_before = os.getloadavg()
    meter = CpuMeter(stack.cpu_roles())
    meter.start()
    upload_started = time.time()
    sent = upload_all(stack.web_port, token, bodies, clients, deadline, rate)
    upload_seconds = time.time() - upload_started
    ids = {item.upload_id for item in sent}
    print(f"  {len(bodies)} accepted in {upload_seconds:.1f}s ({rate or 'burst'}/s offered); waiting for verdicts ...")

    def phase_rows() -> list[tuple[int, str, int, float | None, str]]:
        return [row for row in rows_of_load_user(stack) if row[0] in ids]

    def all_finished() -> bool:
        rows = phase_rows()
        return len(rows) == len(ids) and all(row[1] in ("done", "failed") for row in rows)

    try:
        wait_for("every verdict", all_finished, timeout=max(1.0, deadline - time.monotonic()), interval=1)
    except LoadTestError as error:
        raise LoadTestError(f"{error}\nworker log:\n{stack.log_tail('worker')}") from error
    try:  # the heat maps come after the verdicts, on the same worker: their CPU belongs to this phase
        wait_for("the heat maps", lambda: stack.heatmaps_waiting() == 0, timeout=60, interval=0.5)
    except LoadTestError:
        print("  heat maps still queued after 60 s; measuring without waiting longer")
    cpu = meter.stop()
    by_id = {row[0]: row for row in phase_rows()}
    latencies = [finished - item.started for item in sent if (finished := by_id[item.upload_id][3]) is not None]
    answer_ms = [(item.answered - item.started) * 1000 for item in sent]
    processed = [row[3] for row in by_id.values() if row[3] is not None]
    cpu_ms = {role: round(seconds * 1000 / len(bodies), 1) for role, seconds in cpu.items()}
    services_ms = sum(ms for role, ms in cpu_ms.items() if role != "clients")
    return {
        "arrival_rate": rate or "burst (as fast as possible)",
        "uploads": len(bodies),
        "upload_seconds": round(upload_seconds, 1),
        "uploads_per_second": round(len(bodies) / upload_seconds, 1),
        "api_answer_ms_p50": round(percentile(answer_ms, 0.5), 1),
        "api_answer_ms_p95": round(percentile(answer_ms, 0.95), 1),
        "verdicts_per_second": round(len(processed) / (max(processed) - upload_started), 1),
        "time_to_verdict_s_p50": round(percentile(latencies, 0.5), 2),
        "time_to_verdict_s_p95": round(percentile(latencies, 0.95), 2),
        "time_to_verdict_s_mean": round(statistics.fmean(latencies), 2),
        # CPU per upload does not depend on what else the machine runs (the wall-time figures above do).
        "cpu_ms_per_upload": cpu_ms,
        "uploads_per_s_per_worker_core": round(1000 / cpu_ms["worker"], 1) if cpu_ms["worker"] else None,
        "uploads_per_s_per_core_all_services": round(1000 / services_ms, 1) if services_ms else None,
        "loadavg_before": [round(value, 2) for value in loadavg_before],
        "loadavg_after": [round(value, 2) for value in os.getloadavg()],
        "statuses": dict(Counter(row[1] for row in by_id.values())),
    }, [item.upload_id for item in sent]


def run(args: argparse.Namespace) -> dict[str, object]:
    hard_deadline = time.monotonic() + args.max_seconds
    rng = random.Random(args.seed)
    rates: list[float | None] = [float(rate) for rate in args.rates.split(",")] if args.rates else [args.rate]
    counts = [round(rate * args.phase_seconds) if args.rates and rate else args.uploads for rate in rates]
    bodies = [drawn_picture(rng, 320, 240, quality=85) for _ in range(args.warmup + sum(counts))]
    phases: list[dict[str, object]] = []
    returned_ids: list[int] = []
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="phonecheck-load-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        stack = Stack(workdir, worker_concurrency=args.worker_concurrency, web_workers=args.web_workers)
        cleanup.callback(stack.stop)
        print(f"starting PostgreSQL db {stack.database}, redis :{stack.redis_port}, gunicorn :{stack.web_port}, worker")
        stack.start()
        token = stack.token()
        if args.warmup:  # first requests and tasks of each process (imports, connections, caches): not measured
            print(f"warming up with {args.warmup} uploads ...")
            _, returned_ids = measure_phase(
                stack, token, bodies[: args.warmup], clients=args.clients, rate=None, deadline=hard_deadline
            )
        offset = args.warmup
        for rate, count in zip(rates, counts, strict=True):
            print(f"uploading {count} pictures with {args.clients} concurrent clients ...")
            phase, ids = measure_phase(
                stack, token, bodies[offset : offset + count], clients=args.clients, rate=rate, deadline=hard_deadline
            )
            phases.append(phase)
            returned_ids += ids
            offset += count
        rows = rows_of_load_user(stack)
        worker_log = stack.log_tail("worker", 10_000)

    by_id = {row[0]: row for row in rows}
    checks = {
        "every upload done": all(row[1] == "done" and row[4] for row in rows),
        "none lost (every returned id is a row, every row was returned)": set(returned_ids) == set(by_id),
        "none duplicated (ids unique, one row per picture)": len(set(returned_ids)) == len(returned_ids) == len(rows),
        "none classified twice (attempts == 1)": all(row[2] == 1 for row in rows),
        "no task failed in the worker": " raised unexpected" not in worker_log and "ERROR/" not in worker_log,
    }
    report: dict[str, object] = {
        "clients": args.clients,
        "web": f"gunicorn {args.web_workers} workers x 4 threads",
        "worker": f"1 celery worker, concurrency {args.worker_concurrency} (prefork), queues classify,heatmaps",
        "cpus": os.cpu_count(),
    }
    if len(phases) == 1:
        report.update(phases[0])
    else:
        report["phases"] = phases
    report["checks"] = checks
    report["finished_at"] = datetime.now().isoformat(timespec="seconds")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run load", description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="prefork processes of the one worker")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--max-seconds", type=float, default=1800, help="the whole run stops by then, whatever")
    parser.add_argument(
        "--rate", type=float, help="uploads per second in total (default: as fast as the clients can send)"
    )
    parser.add_argument(
        "--rates",
        help="several steady rates one after another on the same stack, e.g. 6,10,14 (finding the knee); each "
        "phase sends rate x --phase-seconds uploads and waits for their verdicts before the next",
    )
    parser.add_argument("--phase-seconds", type=float, default=40, help="length of each --rates phase")
    parser.add_argument("--warmup", type=int, default=20, help="uploads sent and classified before measuring")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    report = run(args)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    checks = report["checks"]
    assert isinstance(checks, dict)
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    print("all checks passed")
    return 0

"""Bounded load test: thousands of uploads through the API into PostgreSQL + Redis + one celery worker.

    .venv/bin/python -m benchmarks.run load                    # 2,000 uploads, 8 concurrent clients
    .venv/bin/python -m benchmarks.run load --uploads 200      # a quick look
    .venv/bin/python -m benchmarks.run load --uploads 600 --rate 6   # steady arrivals below capacity

Everything it starts is its own and on loopback only: a fresh PostgreSQL database (created, migrated, dropped
at the end), a throwaway ``redis-server`` on a free port (no persistence), gunicorn for the web app and one
``celery -A phoneapp worker`` node, all in production mode (``DEBUG=0``) in a temporary folder. The run stops by
itself: every phase has a deadline, and the whole run is capped by ``--max-seconds``; everything started is
stopped and removed on the way out, success or not.

It checks what the issue asks: every upload ends ``done``, none is lost (every id the API returned is a row,
every row of the load user was returned once), none is duplicated (ids unique, one row per picture sent, no
upload classified twice), and reports uploads per second accepted by the API and the p50/p95 time to verdict
(worker's ``processed`` stamp minus the moment the client started sending).
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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
            "TORCH_THREADS": "1",
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
        redis = shutil.which("redis-server")
        if redis is None:
            raise LoadTestError("redis-server is not installed")
        self._spawn(
            "redis",
            [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        )
        wait_for("redis", lambda: port_open(self.redis_port), timeout=20)
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
        self._spawn(
            "worker",
            [
                sys.executable, "-m", "celery", "-A", "phoneapp", "worker", "-Q", "classify",
                "--concurrency", str(self.worker_concurrency), "-n", f"load-{os.getpid()}@%h",
                "--without-gossip", "--without-mingle", "--loglevel", "INFO",
            ],
        )  # fmt: skip
        wait_for("gunicorn", lambda: port_open(self.web_port), timeout=120)
        wait_for("the worker", lambda: " ready." in self.log_tail("worker", 200), timeout=300, interval=0.5)

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


def run(args: argparse.Namespace) -> dict[str, object]:
    hard_deadline = time.monotonic() + args.max_seconds
    rng = random.Random(args.seed)
    bodies = [drawn_picture(rng, 320, 240, quality=85) for _ in range(args.uploads)]
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="phonecheck-load-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        stack = Stack(workdir, worker_concurrency=args.worker_concurrency, web_workers=args.web_workers)
        cleanup.callback(stack.stop)
        print(f"starting PostgreSQL db {stack.database}, redis :{stack.redis_port}, gunicorn :{stack.web_port}, worker")
        stack.start()
        token = stack.token()

        print(f"uploading {args.uploads} pictures with {args.clients} concurrent clients ...")
        upload_started = time.time()
        sent = upload_all(stack.web_port, token, bodies, args.clients, hard_deadline, args.rate)
        upload_seconds = time.time() - upload_started
        print(f"  all accepted in {upload_seconds:.1f}s; waiting for verdicts ...")

        def all_finished() -> bool:
            rows = rows_of_load_user(stack)
            return len(rows) >= args.uploads and all(row[1] in ("done", "failed") for row in rows)

        try:
            wait_for("every verdict", all_finished, timeout=max(1.0, hard_deadline - time.monotonic()), interval=1)
        except LoadTestError as error:
            raise LoadTestError(f"{error}\nworker log:\n{stack.log_tail('worker')}") from error
        rows = rows_of_load_user(stack)
        worker_log = stack.log_tail("worker", 10_000)

    returned_ids = [item.upload_id for item in sent]
    by_id = {row[0]: row for row in rows}
    latencies = [finished - item.started for item in sent if (finished := by_id[item.upload_id][3]) is not None]
    answer_ms = [(item.answered - item.started) * 1000 for item in sent]
    processed = [row[3] for row in rows if row[3] is not None]
    checks = {
        "every upload done": all(row[1] == "done" and row[4] for row in rows),
        "none lost (every returned id is a row, every row was returned)": set(returned_ids) == set(by_id),
        "none duplicated (ids unique, one row per picture)": len(set(returned_ids)) == len(returned_ids) == len(rows),
        "none classified twice (attempts == 1)": all(row[2] == 1 for row in rows),
        "no task failed in the worker": " raised unexpected" not in worker_log and "ERROR/" not in worker_log,
    }
    return {
        "uploads": args.uploads,
        "clients": args.clients,
        "arrival_rate": args.rate or "burst (as fast as possible)",
        "web": f"gunicorn {args.web_workers} workers x 4 threads",
        "worker": f"1 celery worker, concurrency {args.worker_concurrency} (prefork)",
        "upload_seconds": round(upload_seconds, 1),
        "uploads_per_second": round(args.uploads / upload_seconds, 1),
        "api_answer_ms_p50": round(percentile(answer_ms, 0.5), 1),
        "api_answer_ms_p95": round(percentile(answer_ms, 0.95), 1),
        "verdicts_per_second": round(len(processed) / (max(processed) - upload_started), 1),
        "time_to_verdict_s_p50": round(percentile(latencies, 0.5), 2),
        "time_to_verdict_s_p95": round(percentile(latencies, 0.95), 2),
        "time_to_verdict_s_mean": round(statistics.fmean(latencies), 2),
        "statuses": {status: sum(1 for row in rows if row[1] == status) for status in {row[1] for row in rows}},
        "checks": checks,
        "finished_at": datetime.now().isoformat(timespec="seconds"),
    }


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

"""Broker outages under load, with and without the kombu work-around of ``phoneapp/celery.py``.

    .venv/bin/python -m benchmarks.broker_outage                       # 10 outages without, 10 with it
    .venv/bin/python -m benchmarks.broker_outage --outages 20 --modes off

kombu 5.7.0 can kill the worker when Redis goes away with tasks in flight: a task finishing after the consumer
closed the lost connection acknowledges through the dead channel, whose ``_connparams`` reads ``None.hostname``,
and Celery calls that ``AttributeError`` an "Unrecoverable error" and exits (issue 19: 1 crash in 9 outages).
``phoneapp/celery.py`` turns it into a connection error. This experiment counts crashes per outage for each
``--modes`` entry. The worker is the Procfile's, started through this module (``worker on|off``), which keeps the
work-around (``on``) or undoes it in the worker's process before Celery starts (``off``), and in both modes logs
each call of kombu's ``_connparams`` on a closed connection: how often the crash path was entered, whatever came
of it.

Per mode, on loopback only: the load test's stack (``benchmarks/load_test.py``: its own PostgreSQL database, its
own ``redis-server`` on a free port without persistence, gunicorn, one prefork worker of 2 processes on
``classify,heatmaps``, ``DEBUG=0``), uploads arriving at ``--rate`` per second throughout, and ``--outages`` times:
wait until the worker has classified something, SIGKILL that Redis, wait ``--outage-seconds``, start it again, then
watch the worker until it classifies again and for ``--settle-seconds`` more. A worker that exited, or logged
"Unrecoverable error", is one crash; it is restarted (as a person would) so the next outage is tried too. The
machine's shared Redis is never touched. At the end the backlog is left to drain and the statuses reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.load_test import LoadTestError, Stack, multipart, wait_for
from benchmarks.pictures import drawn_picture

CRASH = "Unrecoverable error"
# What the worker prints each time kombu asks a closed connection for its parameters (the crash path).
CRASH_PATH = "kombu _connparams called on a closed connection"


class OutageStack(Stack):
    """The load test's stack, its Procfile worker run with or without the work-around."""

    def __init__(self, workdir: Path, *, workaround: bool) -> None:
        super().__init__(workdir, worker_concurrency=2, web_workers=2)
        self.workaround = workaround
        self.env["LOG_LEVEL"] = "INFO"

    def worker_command(self) -> list[str]:
        command = super().worker_command()
        # python -m celery ... -> python -m benchmarks.broker_outage worker on|off ...
        command[1:3] = ["-m", "benchmarks.broker_outage", "worker", "on" if self.workaround else "off"]
        return command

    def redis_kill(self) -> None:
        for name, process in self.processes:
            if name == "redis" and process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    def statuses(self) -> dict[str, int]:
        out = self.psql("SELECT status, count(*) FROM phoneapp_upload GROUP BY status", database=self.database)
        return {status: int(count) for status, count in (line.split("|") for line in out.splitlines())}


class Uploader(threading.Thread):
    """Sends a new picture every ``1 / rate`` seconds until stopped; counts the answers by status."""

    def __init__(self, port: int, token: str, rate: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.rate = port, token, rate
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.answers: dict[int, int] = {}

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        index = 0
        while not self.stopping.wait(1 / self.rate):
            body, content_type = multipart(f"outage-{index}.jpg", drawn_picture(self.rng, 640, 480))
            try:
                connection.request(
                    "POST",
                    "/api/uploads/",
                    body=body,
                    headers={"Authorization": f"Token {self.token}", "Content-Type": content_type},
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                status = 0
            self.answers[status] = self.answers.get(status, 0) + 1
            index += 1
        connection.close()


def watch_worker(stack: OutageStack, worker: subprocess.Popen[bytes], log_name: str, args: argparse.Namespace) -> str:
    """After Redis returned: "crashed" (exited, or logged an unrecoverable error), "stuck" (alive but not classifying
    within ``--recover-seconds``: counted apart, never as a recovery) or "recovered" (classifying again, and still
    alive ``--settle-seconds`` later: a late ack of a task from before the outage may still come)."""

    def crashed() -> bool:
        return worker.poll() is not None or CRASH in stack.log_tail(log_name, 100_000)

    back = time.monotonic()
    done_at_return = stack.statuses().get("done", 0)
    while not crashed():
        if time.monotonic() - back > args.recover_seconds:
            return "stuck"
        if stack.statuses().get("done", 0) > done_at_return:
            time.sleep(args.settle_seconds)
            return "crashed" if crashed() else "recovered"
        time.sleep(0.5)
    return "crashed"


def more_done_than(stack: OutageStack, before: int) -> bool:
    return stack.statuses().get("done", 0) > before


def run_mode(args: argparse.Namespace, *, workaround: bool) -> dict[str, object]:
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="phonecheck-outage-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        stack = OutageStack(workdir, workaround=workaround)
        cleanup.callback(stack.stop)
        stack.start()
        uploader = Uploader(stack.web_port, stack.token(), args.rate, args.seed)
        uploader.start()
        cleanup.callback(uploader.stopping.set)
        worker, worker_log, logs = stack.processes[-1][1], "worker", []
        outcomes: list[str] = []
        for n in range(args.outages):
            done_before = stack.statuses().get("done", 0)
            wait_for(
                "the worker to classify",
                partial(more_done_than, stack, done_before),
                timeout=120,
            )
            stack.redis_kill()
            time.sleep(args.outage_seconds)
            stack.redis_start()
            back = time.monotonic()
            outcome = watch_worker(stack, worker, worker_log, args)
            outcomes.append(outcome)
            print(f"  outage {n + 1}/{args.outages}: {outcome} ({time.monotonic() - back:.1f} s after Redis returned)")
            if outcome != "recovered":
                logs.append(worker_log)
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=10)
                worker_log = f"worker-after-outage-{n + 1}"
                worker = stack.worker_start(worker_log)
        logs.append(worker_log)
        uploader.stopping.set()
        uploader.join(timeout=70)
        drain_started = time.monotonic()
        drained_in: float | None = None  # not drained in time: final_statuses says what was left
        try:
            wait_for(
                "every upload to finish",
                lambda: not set(stack.statuses()) & {"pending", "processing"},
                timeout=args.drain_seconds,
                interval=1,
            )
            drained_in = round(time.monotonic() - drain_started, 1)
        except LoadTestError:
            pass
        all_logs = "\n".join(stack.log_tail(name, 1_000_000) for name in logs)
        if args.logs:
            kept = args.logs / ("workaround-on" if workaround else "workaround-off")
            kept.mkdir(parents=True, exist_ok=True)
            for name in logs:
                shutil.copy(workdir / f"{name}.log", kept / f"{name}.log")
        crash_lines = [line.split(CRASH, 1)[1] for line in all_logs.splitlines() if CRASH in line]
        crash_lines = sorted({line.split(" exception=")[0].strip(": ") for line in crash_lines})  # no traceback
        return {
            "workaround": "on" if workaround else "off",
            "outages": len(outcomes),
            "crashes": outcomes.count("crashed"),
            "stuck": outcomes.count("stuck"),
            "recovered": outcomes.count("recovered"),
            "crash_messages": crash_lines,
            # Times kombu asked a closed connection for its parameters: a crash without the work-around.
            "crash_path_entered": all_logs.count(CRASH_PATH),
            "answers": uploader.answers,
            "final_statuses": stack.statuses(),
            "backlog_drained_in_s": drained_in,
            "loadavg": [round(value, 2) for value in os.getloadavg()],
        }


def worker(workaround: str, celery_args: list[str]) -> int:
    """``celery <celery_args>`` with phoneapp/celery.py's kombu work-around kept (``on``) or undone (``off``), and
    every call of the crash path counted in the log either way (behaviour unchanged: the call goes on as it would)."""
    from kombu.transport import redis as kombu_redis

    shipped = kombu_redis.Channel._connparams
    import phoneapp.celery  # noqa: F401  (applies the work-around; the worker's ``-A phoneapp`` finds it loaded)

    chosen = kombu_redis.Channel._connparams if workaround == "on" else shipped

    def _connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(getattr(self, "connection", None), "client", None) is None:
            print(CRASH_PATH, file=sys.stderr, flush=True)
        return chosen(self, *args, **kwargs)

    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
    print(f"kombu work-around of phoneapp/celery.py: {workaround}", file=sys.stderr, flush=True)
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *celery_args]
    celery_main()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broker_outage", description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="off,on", help="'off' (work-around undone), 'on' (as shipped), or both")
    parser.add_argument("--outages", type=int, default=10, help="Redis outages per mode")
    parser.add_argument("--outage-seconds", type=float, default=5)
    parser.add_argument("--rate", type=float, default=4, help="uploads per second, throughout")
    parser.add_argument("--recover-seconds", type=float, default=60, help="an outage without recovery by then")
    parser.add_argument("--drain-seconds", type=float, default=300, help="to finish the backlog at the end")
    parser.add_argument("--settle-seconds", type=float, default=5, help="watched after the first verdict")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--logs", type=Path, help="keep the worker logs in this folder")
    args = parser.parse_args(argv)

    modes: list[dict[str, object]] = []
    report: dict[str, object] = {"started_at": datetime.now().isoformat(timespec="seconds"), "modes": modes}
    for mode in args.modes.split(","):
        print(f"work-around {mode}: {args.outages} outages of {args.outage_seconds:g} s at {args.rate:g} uploads/s")
        modes.append(run_mode(args, workaround=mode.strip() == "on"))
    report["finished_at"] = datetime.now().isoformat(timespec="seconds")
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        sys.exit(worker(sys.argv[2], sys.argv[3:]))
    sys.exit(main())

"""CPU time used by the benchmarks' services, read from ``/proc``: what a phase cost in CPU does not depend on what
else the machine runs, so it says what idle cores could carry even when the wall-time figures were taken on a busy
machine."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name in parentheses may hold spaces: split after its closing parenthesis.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_by_pid(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of each live process of ``pids`` (one that exited meanwhile is left out)."""
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return seconds


def database_backend_pids(database: str) -> list[int]:
    """PostgreSQL's server processes connected to ``database`` (one per connection of the web and workers), asked
    of the machine's server (127.0.0.1, user postgres, trust auth)."""
    out = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atqc",
            f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [int(pid) for pid in out.split()]


def process_group(pgid: int) -> list[int]:
    """Every live process of a process group (a service started with ``start_new_session`` and its children)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[2]) == pgid:
                    members.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return members


class CpuMeter:
    """CPU seconds each role spent between :meth:`start` and :meth:`stop`, sampled every ``interval`` seconds.

    ``roles`` maps a name to a function listing that role's pids now (they may change: a database backend per
    connection). A process that appears meanwhile counts from zero; one that exits keeps its last sample, so at
    most ``interval`` of its time is missed.
    """

    def __init__(self, roles: Mapping[str, Callable[[], Iterable[int]]], *, interval: float = 0.5) -> None:
        self.roles = roles
        self.interval = interval
        self._first: dict[str, dict[int, float]] = {}
        self._last: dict[str, dict[int, float]] = {role: {} for role in roles}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)

    def _sample(self) -> dict[str, dict[int, float]]:
        return {role: cpu_by_pid(pids()) for role, pids in self.roles.items()}

    def _record(self, seen: dict[str, dict[int, float]]) -> None:
        for role, times in seen.items():
            self._last[role].update(times)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._record(self._sample())

    def start(self) -> None:
        self._first = self._sample()
        self._record(self._first)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """Seconds of CPU per role since :meth:`start`."""
        self._stopping.set()
        self._thread.join()
        self._record(self._sample())
        return {
            role: sum(spent - self._first[role].get(pid, 0.0) for pid, spent in self._last[role].items())
            for role in self.roles
        }

"""Progress for long commands: a bar on a terminal, plain lines (every 10%) in logs and pipes."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts done items of a known total and shows it without flooding logs."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.total = max(0, total)
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.started = time.monotonic()
        self._interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_reported_tenth = -1

    def advance(self, count: int = 1) -> None:
        self.done = min(self.total, self.done + count)
        if self._interactive:
            self._draw_bar()
        else:
            tenth = (10 * self.done) // max(1, self.total)
            if tenth != self._last_reported_tenth:
                self._last_reported_tenth = tenth
                self.stream.write(f"{self.label}: {self.done}/{self.total} ({self._elapsed():.0f}s)\n")
                self.stream.flush()

    def finish(self) -> None:
        if self._interactive:
            self._draw_bar()
            self.stream.write("\n")
            self.stream.flush()

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _draw_bar(self) -> None:
        filled = (self.width * self.done) // max(1, self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {self._elapsed():.0f}s")
        self.stream.flush()

"""Process-wide torch settings for serving on a small shared machine."""

from __future__ import annotations

import os

import torch

THREADS_ENV = "PHONECHECK_TORCH_THREADS"


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads once per process and return the number used.

    Default: ``$PHONECHECK_TORCH_THREADS`` or 2. The box has two cores shared with the web server, the
    database and the broker; more threads than cores only adds contention.
    """
    count = threads or int(os.environ.get(THREADS_ENV, "2"))
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count

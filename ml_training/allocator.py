"""Make glibc keep freed memory instead of returning it to the kernel, before torch allocates anything.

Eager torch frees and re-maps large activation buffers on every pass; on these VMs that spent two-thirds of a
feature-extraction run in the kernel. With both thresholds at 4 GiB the same run used user time only and a Lite2
forward pass was 27% faster. glibc reads them once, at start-up, so the training entry points re-execute
themselves with the variables set rather than asking every operator to remember them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

ALLOCATOR_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def missing_allocator_settings() -> dict[str, str]:
    return {name: value for name, value in ALLOCATOR_SETTINGS.items() if os.environ.get(name) != value}


def ensure_allocator_settings(argv: Sequence[str] | None = None) -> None:
    """Re-execute this Python process with the allocator settings if they are not already in its environment."""
    missing = missing_allocator_settings()
    if not missing or os.environ.get("PHONECHECK_NO_REEXEC"):
        return
    environment = {**os.environ, **missing}
    arguments = list(argv) if argv is not None else [sys.executable, *sys.orig_argv[1:]]
    os.execve(sys.executable, arguments, environment)

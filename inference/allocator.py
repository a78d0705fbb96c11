"""Make glibc keep freed memory instead of returning it to the kernel, before torch allocates anything.

Eager torch frees and re-maps large activation buffers on every pass; on these VMs that spent two-thirds of a
feature-extraction run in the kernel. With both thresholds at 4 GiB the same run used user time only and a Lite2
forward pass was 27% faster. glibc reads them once, at start-up, so every entry point that runs eager torch
re-executes itself with the variables set rather than asking every operator to remember them:
``python -m ml_training``, ``python -m ml_training.scene.train``, ``python -m benchmarks.run``, ``python -m
inference`` when it will run on torch, and ``manage.py retrain`` and ``manage.py evaluate`` (manage.py decides
before Django loads).

The price: with a 4 GiB trim threshold freed memory stays with the process, so its RSS stays at its peak. That
suits a run that trains or evaluates and exits; the classification workers (ONNX Runtime, a big picture decode now
and then) are left with glibc's defaults.

This lives in ``inference`` (the lowest layer, no Django) so that every layer's entry points can use it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

ALLOCATOR_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def missing_allocator_settings() -> dict[str, str]:
    return {name: value for name, value in ALLOCATOR_SETTINGS.items() if os.environ.get(name) != value}


def ensure_allocator_settings(argv: Sequence[str] | None = None) -> None:
    """Re-execute this Python process with the allocator settings if they are not already in its environment.

    With ``PHONECHECK_NO_REEXEC`` set it runs on as it is, without them.
    """
    missing = missing_allocator_settings()
    if not missing or os.environ.get("PHONECHECK_NO_REEXEC"):
        return
    environment = {**os.environ, **missing}
    arguments = list(argv) if argv is not None else [sys.executable, *sys.orig_argv[1:]]
    # Whatever this process printed so far would be lost with its buffers.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, arguments, environment)


def release_freed_memory() -> None:
    """Hand the heap memory freed so far back to the kernel (glibc's ``malloc_trim``), once a loaded model was
    dropped: glibc keeps it otherwise, and a worker process grew by ~40 MB at each of its first model switches
    (figures: ``python -m benchmarks.model_switch_memory``, docs/performance.md "Memory"). Does nothing where the C
    library is not glibc."""
    import ctypes
    import gc

    gc.collect()  # a dropped model's objects may hold each other; they must be gone before the heap is trimmed
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)

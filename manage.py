#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from collections.abc import Sequence

# Commands that run eager torch in this process: retrain trains and scores the candidate, evaluate runs the model
# on torch. glibc's allocator settings must be in the environment before Python starts (inference/allocator.py),
# so this is decided here, before Django loads, and the process re-executes itself with them.
EAGER_TORCH_COMMANDS = frozenset({"retrain", "evaluate"})


def runs_eager_torch(argv: Sequence[str]) -> bool:
    """Whether ``argv`` names one of :data:`EAGER_TORCH_COMMANDS` (Django reads the command from ``argv[1]``)."""
    return len(argv) > 1 and argv[1] in EAGER_TORCH_COMMANDS


def main() -> None:
    if runs_eager_torch(sys.argv):
        from inference.allocator import ensure_allocator_settings

        ensure_allocator_settings()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phoneapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

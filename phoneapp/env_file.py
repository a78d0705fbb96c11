"""The settings file: variables read at start into the environment, under those already set.

One reader for the two programs that start from this checkout: Django's settings and gunicorn's configuration
(``gunicorn.conf.py``, which needs ``LOG_FORMAT`` before Django is loaded).
"""

from __future__ import annotations

import os
from pathlib import Path

import environ


def settings_file_read(base_dir: Path) -> None:
    """Read ``PHONECHECK_ENV_FILE``, else ``base_dir/.env``, into ``os.environ`` without replacing what is set
    there; an empty ``PHONECHECK_ENV_FILE`` reads none (the tests' own processes: a developer's ``.env`` with
    DEBUG=1 made the start checks they test pass)."""
    settings_file = os.environ.get("PHONECHECK_ENV_FILE", str(base_dir / ".env"))
    if settings_file:
        environ.Env.read_env(settings_file, overwrite=False)

"""The settings file: variables read at start into the environment, under those already set.

One reader for the two programs that start from this checkout: Django's settings and gunicorn's configuration
(``gunicorn.conf.py``, which needs ``LOG_FORMAT`` before Django is loaded).
"""

from __future__ import annotations

import os
from pathlib import Path

import environ


def settings_file_read(base_dir: Path) -> None:
    """Read ``PHONECHECK_ENV_FILE``, else ``base_dir/.env`` if there is one, into ``os.environ`` without replacing
    what is set there; an empty ``PHONECHECK_ENV_FILE`` reads none (the tests' own processes: a developer's ``.env``
    with DEBUG=1 made the start checks they test pass), and one naming no file stops the start."""
    named = os.environ.get("PHONECHECK_ENV_FILE")
    if named == "":
        return
    if named is not None and not Path(named).is_file():
        # Said at start: a mistyped path silently ran on defaults (DEBUG on, SQLite).
        raise FileNotFoundError(f"PHONECHECK_ENV_FILE names {named}, which is not a file.")
    settings_file = Path(named) if named is not None else base_dir / ".env"
    if settings_file.is_file():  # no .env is the usual case: nothing to say about it
        environ.Env.read_env(str(settings_file), overwrite=False)

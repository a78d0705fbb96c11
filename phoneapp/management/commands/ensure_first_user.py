"""``manage.py ensure_first_user``: on a new database, ask for the first user, so ``make run`` is all a newcomer
types before logging in (there is no sign-up page: accounts are made by staff)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


def _hint() -> str:
    """The command to type, with the interpreter this command runs under (``.venv/bin/python`` after
    ``make run``): a bare ``python`` in a fresh shell has no Django."""
    python = Path(sys.executable)
    try:
        shown = f"{python.relative_to(Path.cwd())}"
    except ValueError:
        shown = str(python)
    return f"No user yet. Create one to sign in with:  {shown} manage.py createsuperuser"


class Command(BaseCommand):
    help = (
        "When the database has no user and someone is at the terminal, ask for the first one (a superuser: it also "
        "reaches /review/, /dashboard/ and /admin/). Otherwise does nothing but say how to create one."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if get_user_model().objects.exists():
            return
        if not sys.stdin.isatty():
            self.stdout.write(_hint())
            return
        self.stdout.write("No user yet: create the first one (a superuser; more users from /admin/).")
        call_command("createsuperuser", interactive=True)

"""``manage.py create_api_token USERNAME``: a new API token for a user, printed once (replaces DRF's
``drf_create_token``, which wrote keys in clear; only a digest is stored now)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from phoneapp.services.api_tokens import api_token_regenerate


class Command(BaseCommand):
    help = (
        "Make a new API token for USERNAME and print its key (on stdout, alone, for scripts). The user's previous "
        "token stops working. The key cannot be shown again: only its SHA-256 is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        self.stdout.write(api_token_regenerate(user=user))

"""``manage.py sync_models``: register the model versions shipped in ``MODELS_DIR`` (run at every deploy)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from phoneapp.services.model_versions import model_versions_sync_from_disk


class Command(BaseCommand):
    help = (
        "Register every model directory under MODELS_DIR that the database does not know yet, and activate the "
        "default named in MODELS_DIR/ACTIVE when nothing is active or when that default was just shipped. "
        "Versions activated by people stay active. Safe to run at any time; deploys run it after migrate."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        registered = model_versions_sync_from_disk()
        names = ", ".join(version.name for version in registered) or "none"
        self.stdout.write(f"{len(registered)} model version(s) registered: {names}.")

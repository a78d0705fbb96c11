"""``manage.py sync_models``: register the model versions shipped in ``MODELS_DIR`` (run at every deploy)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.manifest import ModelLoadError
from phoneapp.selectors.model_versions import model_version_active_or_none
from phoneapp.services.model_versions import model_version_verify, model_versions_sync_from_disk


class Command(BaseCommand):
    help = (
        "Register every model directory under MODELS_DIR that the database does not know yet, and activate the "
        "default named in MODELS_DIR/ACTIVE when nothing is active or when that default was just shipped. "
        "Versions activated by people stay active. Fails when no usable version is active afterwards (a deploy "
        "should stop there). Safe to run at any time; deploys run it after migrate."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        registered = model_versions_sync_from_disk()
        names = ", ".join(version.name for version in registered) or "none"
        self.stdout.write(f"{len(registered)} model version(s) registered: {names}.")
        # Said here, at deploy time: an empty or wrong MODELS_DIR otherwise showed first as failed uploads.
        active = model_version_active_or_none()
        if active is None:
            raise CommandError(
                f"No model version is active, and MODELS_DIR ({settings.MODELS_DIR}) names no default that could "
                "be: copy the release's trained_models/ into it (README, Production setup)."
            )
        try:
            model_version_verify(version=active)
        except ModelLoadError as error:
            raise CommandError(
                f"The active model version {active.name} cannot be loaded from MODELS_DIR ({settings.MODELS_DIR}): "
                f"{error} Copy the release's trained_models/ into it (after a restore: the backup's copy, which "
                "has the retrained versions too), or activate another version (`manage.py activate_model`)."
            ) from error
        self.stdout.write(f"Active: {active.name}.")

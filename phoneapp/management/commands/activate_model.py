"""``manage.py activate_model NAME``: roll back (or forward) to a registered model version from a shell, as the
admin's "Activate this version" does; without a name, list the versions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.manifest import ModelLoadError
from phoneapp.selectors.model_versions import ModelVersionNotFound, model_version_get, model_version_list
from phoneapp.services.model_versions import model_version_activate_if_loadable


class Command(BaseCommand):
    help = (
        "Make the registered model version NAME the active one: workers switch to it before their next prediction "
        "(its fast ONNX export is prepared first, in this machine's cache, so that they switch without a pause). "
        "Refused, with the active version unchanged, when its files are missing or changed on disk. Without NAME, "
        "list the registered versions, the active one marked."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="a version name, as `activate_model` without it lists them")

    def handle(self, *args: Any, name: str | None, **options: Any) -> None:
        if name is None:
            for version in model_version_list():
                self.stdout.write(f"{'*' if version.is_active else ' '} {version.name}")
            return
        try:
            chosen = model_version_get(name=name)
        except ModelVersionNotFound as error:
            raise CommandError(f"No model version named {name!r}: `manage.py activate_model` lists them.") from error
        try:
            model_version_activate_if_loadable(
                version=chosen,
                prepare_export=True,  # a shell can wait; workers on this machine then switch without a pause
                on_export_start=lambda: self.stdout.write(
                    f"Preparing {name} for serving (its ONNX export, once per machine)..."
                ),
            )
        except ModelLoadError as error:
            raise CommandError(
                f"Not activated: workers could not load {name} ({error}). The active model is unchanged."
            ) from error
        self.stdout.write(f"Activated {name}: workers switch to it before their next prediction.")

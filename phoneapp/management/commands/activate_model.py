"""``manage.py activate_model NAME``: roll back (or forward) to a registered model version from a shell, as the
admin's "Activate this version" does; without a name, list the versions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.manifest import ModelLoadError
from phoneapp.selectors.model_versions import (
    ActivationComparison,
    ModelVersionNotFound,
    model_version_compare_with_active,
    model_version_get,
    model_version_list,
)
from phoneapp.services.model_versions import model_version_activate_if_loadable


class Command(BaseCommand):
    help = (
        "Make the registered model version NAME the active one: workers switch to it before their next prediction "
        "(its fast ONNX export is made first, into this machine's cache unless it is there already, so that they "
        "switch without a pause). "
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
        comparison = model_version_compare_with_active(version=chosen)
        try:
            model_version_activate_if_loadable(
                version=chosen,
                prepare_export=True,  # a shell can wait; workers on this machine then switch without a pause
                on_export_start=lambda: self.stdout.write(
                    f"Preparing {name} for serving: making its ONNX export, once per machine (seconds)..."
                ),
            )
        except ModelLoadError as error:
            raise CommandError(
                f"Not activated: workers could not load {name} ({error}). The active model is unchanged."
            ) from error
        self.stdout.write(f"Activated {name}: workers switch to it before their next prediction.")
        for line in _warnings(comparison):
            self.stderr.write(line)


def _warnings(comparison: ActivationComparison) -> list[str]:
    """What the admin's confirmation page says before it activates a version worse on the same pictures, said here
    after the fact: activating our first retrain's refused candidate from a shell said only "Activated", with
    nothing about its 20 of 30 ground-truth pictures against the active version's 29 or the retrain's refusal. The
    command does not ask (scripts call it); the words tell a person what to roll back to."""
    if not comparison.worse or comparison.active is None:
        return []
    version, previous = comparison.version.name, comparison.active.name
    lines = [f"Warning: {version} is right on fewer of the same pictures than {previous}, active until now:"]
    lines += [
        f"  {scores.picture_set.label}: {version} {scores.correct} of {scores.count}, {previous} "
        f"{scores.active_correct} of {scores.count}"
        for scores in comparison.sets
    ]
    if comparison.retrain_decision:
        lines.append(f"The retrain that registered it decided: {comparison.retrain_decision}")
    lines.append(f"To go back: manage.py activate_model {previous}")
    return lines

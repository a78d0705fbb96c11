"""``manage.py evaluate``: metrics of a model version on the reviewed uploads no version trained on (ground truth and
the eval split), or on a folder of labelled pictures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from phoneapp.models import ModelVersion
from phoneapp.selectors.model_versions import ModelVersionNotFound, model_version_get
from phoneapp.services.errors import EvaluationRefused, NoActiveModel, NothingToEvaluate
from phoneapp.services.evaluation import model_version_evaluate
from phoneapp.services.model_versions import model_version_active
from phoneapp.services.reporting import format_evaluation


class Command(BaseCommand):
    help = (
        "Measure a model version (default: the active one) on the reviewed uploads no version trained on (ground truth "
        "and the eval split: pooled, then each apart, as the retrain reports them), or on --data-dir."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # `--version V` names a model version here; Django's own --version (print Django's version) gives way.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", dest="model_version", help="model version name (default: active)")
        parser.add_argument("--data-dir", type=Path, help="phone/ and not_phone/ folders, or a manifest.csv")
        parser.add_argument("--json", action="store_true", help="print the metrics as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        version = self._version(options["model_version"])
        try:
            metrics = model_version_evaluate(version=version, data_dir=options["data_dir"])
        except NothingToEvaluate as error:
            raise CommandError(f"{error.message}; pass --data-dir.") from error
        except EvaluationRefused as error:
            raise CommandError(error.message) from error
        if options["json"]:
            self.stdout.write(json.dumps(metrics, indent=2, sort_keys=True))
        else:
            self.stdout.write(format_evaluation(metrics))

    def _version(self, name: str | None) -> ModelVersion:
        if name is None:
            try:
                return model_version_active()
            except NoActiveModel as error:
                raise CommandError(error.message) from error
        try:
            return model_version_get(name=name)
        except ModelVersionNotFound as error:
            raise CommandError(error.message) from error

"""``manage.py evaluate``: metrics of a model version on the reviewed uploads no version trained on (ground truth and
the eval split), or on a folder of labelled pictures."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.manifest import ModelLoadError
from ml_training.data import load_samples
from phoneapp.models import ModelVersion
from phoneapp.selectors.model_versions import ModelVersionNotFound, model_version_get
from phoneapp.services.errors import NoActiveModel
from phoneapp.services.evaluation import decode_labelled, held_out_upload_samples, measure_classifier
from phoneapp.services.model_versions import classifier_load, model_dir_of, model_version_active
from phoneapp.services.reporting import format_metrics_table


class Command(BaseCommand):
    help = (
        "Measure a model version (default: the active one) on the reviewed uploads no version trained on (ground truth "
        "and the eval split), or on --data-dir."
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
        with tempfile.TemporaryDirectory() as workdir:
            if options["data_dir"]:
                try:
                    samples = load_samples(options["data_dir"])
                except (FileNotFoundError, KeyError, ValueError) as error:
                    raise CommandError(f"{options['data_dir']}: {error}") from error
            else:
                samples = held_out_upload_samples(workdir=Path(workdir))
            pictures = decode_labelled(samples)
            if not pictures.samples:
                raise CommandError(
                    "No readable labelled pictures: no ground truth or eval-split reviews yet; pass --data-dir."
                )
            try:
                classifier = classifier_load(model_dir=model_dir_of(version), engine="torch")
            except ModelLoadError as error:
                raise CommandError(str(error)) from error
            metrics = measure_classifier(classifier, pictures)
        metrics["unreadable_skipped"] = len(pictures.unreadable)
        metrics["data"] = str(options["data_dir"]) if options["data_dir"] else "ground truth and eval-split uploads"
        if options["json"]:
            self.stdout.write(json.dumps(metrics, indent=2, sort_keys=True))
        else:
            self.stdout.write(format_metrics_table(metrics))

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

"""``manage.py retrain``: train a new model version from reviewed uploads (plus folders) and maybe activate it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from phoneapp.progress import Progress
from phoneapp.services.reporting import format_side_by_side
from phoneapp.services.retraining import PROMOTION_RULE, RetrainError, RetrainRequest, retrain


class Command(BaseCommand):
    help = (
        "Train a candidate model from every upload with a reviewed label (reviewed labels only; the model's own "
        "guesses are never used), plus --data-dir and TRAINING_DATA_DIR when set. The candidate and the active "
        "model are measured on the same held-out pictures (split by image content, near-duplicates kept "
        f"together) and shown side by side. Promotion rule: {PROMOTION_RULE} --activate forces activation; "
        "--dry-run trains and reports without registering anything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data-dir", type=Path, help="extra pictures: phone/ and not_phone/, or manifest.csv")
        parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: ml_training's)")
        parser.add_argument("--seed", type=int, default=0, help="random seed for splits and training")
        parser.add_argument("--activate", action="store_true", help="activate the candidate even if it is worse")
        parser.add_argument("--dry-run", action="store_true", help="train and report, register nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="any other training setting of ml_training's TrainConfig, e.g. --set image_size=128",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        request = RetrainRequest(
            data_dir=options["data_dir"],
            epochs=options["epochs"],
            seed=options["seed"],
            config_overrides=_parse_settings(options["set"]),
            force_activate=options["activate"],
            dry_run=options["dry_run"],
        )
        as_json = options["json"]
        log = self._log_to_stderr if as_json else self._log_to_stdout
        try:
            report = retrain(request=request, log=log, progress=self._progress_factory())
        except RetrainError as error:
            raise CommandError(str(error)) from error
        if as_json:
            self.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str))
            return
        self.stdout.write(format_side_by_side(report.candidate, report.active))
        self.stdout.write(report.decision)

    def _log_to_stdout(self, line: str) -> None:
        self.stdout.write(line)

    def _log_to_stderr(self, line: str) -> None:
        self.stderr.write(line)

    def _progress_factory(self) -> Callable[[str, int], Callable[[int], None]]:
        def start(label: str, total: int) -> Callable[[int], None]:
            progress = Progress(label, total, stream=self.stderr._out)  # the real stream: isatty() must work

            def advance(count: int) -> None:
                progress.advance(count)
                if progress.done >= progress.total:
                    progress.finish()

            return advance

        return start


def _parse_settings(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, separator, raw = pair.partition("=")
        if not separator:
            raise CommandError(f"--set takes NAME=VALUE, got {pair!r}.")
        try:
            settings[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[name.strip()] = raw
    return settings

"""``manage.py retrain``: train a new model version from reviewed uploads (plus folders) and maybe activate it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from phoneapp.progress import Progress
from phoneapp.services.errors import RetrainError
from phoneapp.services.promotion import PROMOTION_RULE, paired_tests_lines
from phoneapp.services.reporting import format_trusted_scores
from phoneapp.services.retraining import RetrainRequest, retrain


class Command(BaseCommand):
    help = (
        "Train a scene-model candidate from reviewed uploads of the train split (reviewed labels and boxes only; "
        "the model's own guesses are never used, and a review contradicting a confident verdict waits for a "
        "second reviewer), plus --data-dir and TRAINING_DATA_DIR when set; warm-started from the active model "
        "when it is a scene model. The candidate and the active model are scored on the same trusted pictures: "
        "the ground-truth set and the eval split, which never train. "
        f"Promotion rule: {PROMOTION_RULE} --dry-run trains and reports without registering anything. "
        "See docs/retraining.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data-dir",
            type=Path,
            action="append",
            default=[],
            help="extra pictures: phone/ and not_phone/, or manifest.csv; repeat it for several folders",
        )
        parser.add_argument(
            "--epochs", type=int, default=None, help="head training epochs (default: the scene recipe's)"
        )
        parser.add_argument("--seed", type=int, default=0, help="random seed for splits and training")
        parser.add_argument(
            "--activate", action="store_true", help="activate the candidate whatever the rule says (your decision)"
        )
        parser.add_argument("--dry-run", action="store_true", help="train and report, register nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="any other setting of the scene recipe (ViewConfig, TrainSettings, SceneRecipe), "
            "e.g. --set image_size=224 --set folds=3",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        request = RetrainRequest(
            data_dirs=tuple(options["data_dir"]),
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
            if as_json:  # a script reading stdout gets the reason too, not an empty answer
                self.stdout.write(json.dumps({"error": str(error), "promoted": False}, indent=2))
            raise CommandError(str(error)) from error
        except KeyboardInterrupt:
            # Ctrl-C mid-training printed torch's whole stack; what matters is what was left behind.
            raise CommandError(
                "Interrupted: nothing was registered and the scratch folder was removed.", returncode=130
            ) from None
        if as_json:
            self.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str))
            return
        self.stdout.write(format_trusted_scores(report.candidate, report.active))
        for line in paired_tests_lines(report.paired_tests):
            self.stdout.write(line)
        self.stdout.write(
            f"training data: {report.data_summary['pictures']} pictures, "
            f"{report.data_summary['boxed_pictures']} with reviewers' boxes"
        )
        self.stdout.write(report.decision)

    def _log_to_stdout(self, line: str) -> None:
        self.stdout.write(line)

    def _log_to_stderr(self, line: str) -> None:
        self.stderr.write(line)

    def _progress_factory(self) -> Callable[[str, int], Callable[[int], None]]:
        def start(label: str, total: int) -> Callable[[int], None]:
            # The real stream, so isatty() works: OutputWrapper keeps it in its private ``_out``, which the stubs
            # do not declare (they type unknown attributes as callables, hence the ignore).
            progress = Progress(label, total, stream=self.stderr._out)  # type: ignore[arg-type]

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

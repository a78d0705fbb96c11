"""``python -m ml_training train|evaluate|compare|second-opinion``: train a scene model version; measure any model
version; compare two cross-validated versions; add a whole-picture model's second opinion to a scene model.

``train`` flags map one-to-one to the recipe's fields (:mod:`ml_training.scene.config`, torchvision-references
style); ``python -m ml_training train --help`` lists each knob with what it means and its default.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ml_training import compare as compare_command
from ml_training import second_opinion as second_opinion_command
from ml_training.evaluate import PARTS


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="a model directory, or a version name under the models folder (default: active)"
    )
    parser.add_argument(
        "--data-dir",
        action="append",
        required=True,
        type=Path,
        help="a folder with manifest.csv (its source and phone_boxes columns give figures per source and box "
        "hits) or phone/ and not_phone/ sub-folders; repeat for several",
    )
    parser.add_argument(
        "--part",
        choices=PARTS,
        default="all",
        help="only this part of the split saved with a model trained on a held-out split (default: %(default)s)",
    )
    parser.add_argument(
        "--engine", choices=("torch", "onnxruntime"), default=None, help="default: the model's own (as served)"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many pictures (a seeded sample)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document instead")


def build_parser() -> argparse.ArgumentParser:
    from ml_training.scene.train import get_args_parser

    parser = argparse.ArgumentParser(prog="python -m ml_training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train, cross-validate, calibrate and write a scene model version",
        description=sys.modules["ml_training.scene.train"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get_args_parser(train)
    train.set_defaults(command_parser=train)
    evaluate = commands.add_parser(
        "evaluate",
        help="measure a model version on labelled folders, per source and slice, with box hits",
        description=sys.modules["ml_training.evaluate"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(command_parser=evaluate)
    compare = commands.add_parser(
        "compare",
        help="paired test of two cross-validated versions' out-of-fold verdicts, per slice and source",
        description=compare_command.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("baseline", help="a model directory, or a version name under the models folder")
    compare.add_argument("candidate", help="the same, for the version that would replace it")
    compare.add_argument("--json", action="store_true", help="print the counts as one JSON document instead")
    compare.add_argument(
        "--data-dir",
        type=Path,
        action="append",
        default=[],
        help="for versions whose predictions.json has no picture groups: a folder they trained on (repeatable)",
    )
    compare.add_argument(
        "--boxes", type=Path, action="append", default=[], help="with --data-dir: a box table they trained with"
    )
    compare.set_defaults(command_parser=compare)
    second = commands.add_parser(
        "second-opinion",
        help="a new version: a cross-validated scene model asking a whole-picture model where it says not a phone",
        description=sys.modules["ml_training.second_opinion"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    second_opinion_command.add_arguments(second)
    second.set_defaults(command_parser=second)
    return parser


def run_compare(args: argparse.Namespace) -> int:
    """``compare``: one line (or JSON object) per group; a missing version or prediction file is the parser's error."""
    from inference.loader import resolve_model_dir
    from inference.manifest import ModelLoadError

    try:
        groups = compare_command.picture_groups_from_data(args.data_dir, args.boxes) if args.data_dir else None
        comparisons = compare_command.compare(
            resolve_model_dir(args.baseline), resolve_model_dir(args.candidate), picture_groups=groups
        )
    except (ModelLoadError, ValueError) as error:
        args.command_parser.error(str(error))
    if args.json:
        print(json.dumps([c.to_dict() for c in comparisons], indent=2))
    else:
        print("\n".join(c.line() for c in comparisons))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        from ml_training.scene.train import run

        return run(args.command_parser, args)
    if args.command == "compare":
        return run_compare(args)
    if args.command == "second-opinion":
        return second_opinion_command.run(args.command_parser, args)
    from inference.manifest import ModelLoadError
    from ml_training.evaluate import run_evaluation

    if args.limit is not None and args.limit < 1:
        args.command_parser.error("--limit must be at least 1.")
    try:
        figures = run_evaluation(
            model=args.model,
            data_dirs=args.data_dir,
            part=args.part,
            engine=args.engine,
            limit=args.limit,
            seed=args.seed,
            quiet=args.json,
        )
    except (ValueError, FileNotFoundError, ModelLoadError) as error:
        args.command_parser.error(str(error))
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    from inference.allocator import ensure_allocator_settings

    ensure_allocator_settings()  # eager torch on these VMs: see inference/allocator.py
    sys.exit(main())

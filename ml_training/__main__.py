"""``python -m ml_training train|evaluate``: the training and evaluation commands.

Flags map one-to-one to :class:`ml_training.train.TrainConfig` fields (torchvision reference style).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ml_training.augment import AugmentConfig
from ml_training.train import TrainConfig


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        if field.name == "augment":
            continue
        default = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default {default}")
    augment = AugmentConfig()
    for field in dataclasses.fields(AugmentConfig):
        default = getattr(augment, field.name)
        flag = "--augment-" + field.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default {default}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the parsed flags describe."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "augment"}
    augment = AugmentConfig(**{f.name: getattr(args, "augment_" + f.name) for f in dataclasses.fields(AugmentConfig)})
    return TrainConfig(**values, augment=augment)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml_training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fine-tune, calibrate, measure and write a model version")
    train.add_argument("--data-dir", required=True, help="folder with manifest.csv or phone/ and not_phone/")
    train.add_argument("--out", required=True, help="model directory to write, e.g. trained_models/NAME")
    train.add_argument("--cache-dir", default=None, help="keep rendered views' trunk features here between runs")
    _add_config_flags(train)
    evaluate = commands.add_parser("evaluate", help="measure a model version on pictures and write a report")
    evaluate.add_argument("--model", default=None, help="version name under trained_models/ or a directory")
    evaluate.add_argument("--data-dir", required=True, help="folder with manifest.csv or phone/ and not_phone/")
    evaluate.add_argument(
        "--part",
        choices=("test", "validation", "train", "all"),
        default="test",
        help="pictures of this part of the model's saved split (all: every picture in --data-dir)",
    )
    evaluate.add_argument(
        "--split-from", default=None, help="take --part from this model's split (compare models on one test set)"
    )
    evaluate.add_argument("--limit", type=int, default=None, help="at most this many pictures (seeded sample)")
    evaluate.add_argument("--composites", type=int, default=200, help="small-phone composites (and distractors)")
    evaluate.add_argument("--multiscale-grid", type=int, default=None, help="override the manifest's crop grid")
    evaluate.add_argument("--report", default=None, help="Markdown report path (default: next to the checkpoint)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from ml_training.data import load_samples
        from ml_training.report import write_training_report
        from ml_training.train import train_model

        result = train_model(
            load_samples(args.data_dir),
            config_from_args(args),
            args.out,
            data_root=args.data_dir,
            cache_dir=args.cache_dir,
        )
        write_training_report(result.model_dir)
        return 0
    from ml_training.evaluate import run_evaluation

    metrics = run_evaluation(
        model=args.model,
        data_dir=Path(args.data_dir),
        part=args.part,
        composites=args.composites,
        multiscale_grid=args.multiscale_grid,
        report_path=args.report,
        seed=args.seed,
        split_from=args.split_from,
        limit=args.limit,
    )
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    from ml_training.allocator import ensure_allocator_settings

    ensure_allocator_settings()  # eager torch on these VMs: see ml_training/allocator.py
    sys.exit(main())

"""``python -m inference [--json] [--model NAME_OR_DIR] FILE...``: classify pictures from the command line.

Prints one line per file, in order. A file that is not a readable picture gets an error line, the others are
still classified, and the exit status is 1. A run that will classify on eager torch first re-executes itself with
glibc's allocator settings (:func:`runs_eager_torch`, inference/allocator.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from inference.contract import TORCH
from inference.images import ImageError, open_image
from inference.loader import engine_for, load, resolve_model_dir
from inference.manifest import ModelLoadError, read_manifest
from inference.onnx_engine import onnxruntime_available


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference", description="Does each picture show a phone?")
    parser.add_argument("files", nargs="+", metavar="FILE", help="pictures to classify")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--model", default=None, help="version name under trained_models/ or a model directory")
    parser.add_argument(
        "--engine", default=None, choices=["onnxruntime", "torch"], help="default: the fastest installed engine"
    )
    return parser


def runs_eager_torch(args: argparse.Namespace) -> bool:
    """Whether this run will classify on eager torch: ``--engine torch``, a manifest that asks for torch, an engine
    name :func:`~inference.loader.load` does not know, or no ONNX Runtime installed (the loader falls back to torch
    in the last two).

    Read from the manifest alone (no torch, no ONNX export), so it is decided before anything large is loaded. A
    model that cannot be read gives False: :func:`main` then reports it. Not foreseen: an ONNX export that fails
    when the model loads (the loader then warns and falls back to torch, without the settings).
    """
    try:
        manifest = read_manifest(resolve_model_dir(args.model))
    except (ModelLoadError, OSError, ValueError):
        return False
    try:
        engine = engine_for(manifest, args.engine)
    except ValueError:
        return True
    return engine == TORCH or not onnxruntime_available()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        classifier = load(resolve_model_dir(args.model), engine=args.engine)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = False
    for path in args.files:
        try:
            image = open_image(path, draft_size=classifier.manifest.preprocessing.draft_size)
        except (ImageError, OSError) as error:
            failed = True
            message = str(error) if isinstance(error, ImageError) else f"cannot read file: {error.strerror}"
            print(json.dumps({"path": path, "error": message}) if args.json else f"{path}\terror: {message}")
            continue
        prediction = classifier.predict([image])[0]
        if args.json:
            print(json.dumps({"path": path, **prediction.to_dict()}))
        else:
            where = " ".join(
                "[" + ",".join(f"{value:.3f}" for value in box.rounded_corners()) + "]" for box in prediction.boxes
            )
            print(
                f"{path}\t{prediction.label}\t{prediction.probability:.3f}\t{prediction.model_version}\t{where}".rstrip()
            )
    return 1 if failed else 0


if __name__ == "__main__":
    from inference.allocator import ensure_allocator_settings

    if runs_eager_torch(build_parser().parse_args()):
        ensure_allocator_settings()  # eager torch on these VMs: see inference/allocator.py
    sys.exit(main())

"""``python benchmarks/engine_accuracy.py [--model NAME] [--json]``: does the fast path change any verdict?

Classifies every labelled picture of ``../shared/datasets/phone-images`` with eager fp32 torch and with the fast
path (``inference/acceleration.py``), and prints both accuracies, how many verdicts differ and the largest
probability difference. The fast path must stay within 0.3 accuracy points of fp32 (issue 6).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks.pictures import DATASET_DIR, dataset_available, labelled_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/engine_accuracy.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="version name under trained_models/ (default: the active one)")
    parser.add_argument("--engine", default=None, help="fast engine to compare (default: as the worker chooses)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not dataset_available():
        print(f"labelled pictures not found at {DATASET_DIR}", file=sys.stderr)
        return 2

    import torch

    from inference.acceleration import accelerate, default_cache_dir
    from inference.images import open_image
    from inference.loader import load_classifier, resolve_model_dir

    torch.set_num_threads(args.threads)
    reference = load_classifier(resolve_model_dir(args.model))
    fast = accelerate(reference, engine=args.engine, threads=args.threads, cache_dir=default_cache_dir())
    files = labelled_files()
    draft = reference.manifest.preprocessing.draft_size
    results = {}
    for name, classifier in (("torch_fp32", reference), (getattr(fast, "engine", "torch"), fast)):
        started = time.perf_counter()
        predictions = []
        for start in range(0, len(files), 16):
            chunk = [open_image(path, draft_size=draft) for path, _ in files[start : start + 16]]
            predictions.extend(classifier.predict(chunk))
        results[name] = {"predictions": predictions, "seconds": time.perf_counter() - started}
    (base_name, base), (fast_name, accelerated) = results.items()
    labels = [label for _, label in files]

    def accuracy(predictions: list) -> float:
        return 100 * sum(p.label == label for p, label in zip(predictions, labels, strict=True)) / len(labels)

    report = {
        "model_version": reference.version,
        "pictures": len(files),
        "engine": fast_name,
        f"accuracy_{base_name}": round(accuracy(base["predictions"]), 2),
        f"accuracy_{fast_name}": round(accuracy(accelerated["predictions"]), 2),
        "verdicts_that_differ": sum(
            a.label != b.label for a, b in zip(base["predictions"], accelerated["predictions"], strict=True)
        ),
        "max_probability_difference": max(
            abs(a.probability - b.probability)
            for a, b in zip(base["predictions"], accelerated["predictions"], strict=True)
        ),
        f"seconds_{base_name}": round(base["seconds"], 1),
        f"seconds_{fast_name}": round(accelerated["seconds"], 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

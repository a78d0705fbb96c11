"""Cost of multi-scale inference: milliseconds per picture with and without the overlapping crops.

``python benchmarks/accuracy_multiscale.py [--model NAME] [--pictures 16] [--rounds 3] [--grid 2]``

Grids are timed in alternating rounds so that load from other processes on a shared machine hits both alike.
The accuracy side of the trade is measured by ``python -m ml_training evaluate --multiscale-grid N``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference.loader import load_classifier, resolve_model_dir
from inference.runtime import configure_torch_threads


def drawn_pictures(count: int, seed: int = 0) -> list[Image.Image]:
    """Camera-sized pictures with random shapes: the content does not matter for timing, the size does."""
    rng = random.Random(seed)
    pictures = []
    for _ in range(count):
        image = Image.new("RGB", (640, 480), tuple(rng.randint(0, 255) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            x, y = rng.randint(0, 600), rng.randint(0, 440)
            draw.rectangle(
                (x, y, x + rng.randint(10, 200), y + rng.randint(10, 200)), fill=(rng.randint(0, 255), 90, 160)
            )
        pictures.append(image)
    return pictures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="finetuned-lite0-v1")
    parser.add_argument("--pictures", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grid", type=int, default=2)
    args = parser.parse_args()
    threads = configure_torch_threads()
    classifier = load_classifier(resolve_model_dir(args.model))
    pictures = drawn_pictures(args.pictures)
    classifier.predict(pictures[:2])  # warm-up
    totals = {0: 0.0, args.grid: 0.0}
    for _ in range(args.rounds):
        for grid in totals:
            classifier.multiscale_grid = grid
            started = time.perf_counter()
            classifier.predict(pictures)
            totals[grid] += time.perf_counter() - started
    single = 1000 * totals[0] / (args.rounds * args.pictures)
    multi = 1000 * totals[args.grid] / (args.rounds * args.pictures)
    print(f"threads={threads} single-scale: {single:.1f} ms/picture")
    print(
        f"threads={threads} grid {args.grid} (1 + {args.grid**2} views): {multi:.1f} ms/picture ({multi / single:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

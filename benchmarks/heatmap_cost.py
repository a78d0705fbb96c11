"""What a "where is the phone" overlay costs next to the verdict it explains (decides: inline or its own task).

    .venv/bin/python -m benchmarks.heatmap_cost [--model trained_models/imagenet-zero-shot] [--repeats 15]

Prints the median wall-clock and CPU milliseconds per picture, with ``PHONECHECK_TORCH_THREADS`` (default 2), for:
the prediction, the evidence map alone (Grad-CAM, or occlusion for a model without it), the whole overlay PNG
(map + upsampling + encoding), and the model-agnostic occlusion fallback. Pictures are drawn, 640x480.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from inference import load_classifier, resolve_model_dir
from inference.heatmap import heatmap_png, occlusion_evidence
from inference.runtime import configure_torch_threads
from tests.images import draw_picture


def median_ms(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds. CPU time (all threads of this process) barely moves when other
    processes compete for the cores, so it is the figure to compare on a shared machine."""
    work()  # warm-up: allocations, lazy initialisation
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory or version (default: the active one)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    threads = configure_torch_threads()
    classifier = load_classifier(resolve_model_dir(args.model))
    picture = draw_picture(width=640, height=480)
    rows = [
        ("predict (verdict)", median_ms(lambda: classifier.predict([picture]), args.repeats)),
        ("evidence_map", median_ms(lambda: classifier.evidence_map(picture), args.repeats)),
        ("heatmap_png (map + overlay + PNG)", median_ms(lambda: heatmap_png(classifier, picture), args.repeats)),
        (
            "occlusion fallback (7x7)",
            median_ms(lambda: occlusion_evidence(classifier, picture), max(3, args.repeats // 5)),
        ),
    ]
    print(f"model {classifier.version} ({classifier.manifest.kind}), torch threads {threads}, 640x480 picture")
    baseline = rows[0][1][1]
    print(f"{'':36s} {'wall ms':>9s} {'CPU ms':>9s}  CPU vs predict")
    for name, (wall, cpu) in rows:
        print(f"{name:36s} {wall:9.1f} {cpu:9.1f}  {cpu / baseline:4.1f}x")


if __name__ == "__main__":
    main()

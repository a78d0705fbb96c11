"""Measuring a loaded classifier on pictures: figures, timing, and the report with plots.

Works on any :class:`inference.Classifier` (zero-shot or fine-tuned) through its public prediction path,
so the figures are what the CLI and the web app would produce.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inference.contract import Classifier
from inference.images import open_image
from inference.loader import load, resolve_model_dir
from inference.runtime import configure_torch_threads
from ml_training.composites import CompositeFactory, plain_background_cutouts
from ml_training.data import Sample, load_samples
from ml_training.metrics import Metrics, binary_metrics, format_metrics
from ml_training.report import Section, write_report


@dataclass
class EvaluationResult:
    """Calibrated probabilities per picture, the figures at the model's threshold, and the time it took."""

    metrics: Metrics
    probabilities: np.ndarray
    targets: np.ndarray
    milliseconds_per_image: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics.to_dict(), "milliseconds_per_image": round(self.milliseconds_per_image, 1)}


def evaluate_images(
    classifier: Classifier, images: Sequence[Image.Image], targets: Sequence[int], *, batch_size: int = 16
) -> EvaluationResult:
    """Score decoded pictures with ``classifier`` and measure them against 0/1 ``targets``."""
    started = time.perf_counter()
    probabilities: list[float] = []
    for start in range(0, len(images), batch_size):
        probabilities.extend(classifier.phone_probabilities(images[start : start + batch_size]))
    elapsed = time.perf_counter() - started
    scores, truth = np.array(probabilities, dtype=np.float64), np.array(targets, dtype=np.int64)
    return EvaluationResult(
        metrics=binary_metrics(scores, truth, classifier.manifest.threshold),
        probabilities=scores,
        targets=truth,
        milliseconds_per_image=1000 * elapsed / max(1, len(images)),
    )


def evaluate_classifier(classifier: Classifier, samples: Sequence[Sample], *, batch_size: int = 16) -> EvaluationResult:
    """Decode ``samples`` as inference does and measure ``classifier`` on them (decoding is not timed)."""
    draft = classifier.manifest.preprocessing.draft_size
    images = [open_image(sample.path, draft_size=draft) for sample in samples]
    return evaluate_images(classifier, images, [sample.target for sample in samples], batch_size=batch_size)


def samples_in_part(model_dir: Path, samples: Sequence[Sample], data_dir: Path, part: str) -> list[Sample]:
    """The samples of one part of the split saved with the model (``all``: every sample)."""
    if part == "all":
        return list(samples)
    split_path = model_dir / "split.json"
    if not split_path.is_file():
        raise FileNotFoundError(f"{model_dir} has no split.json; use --part all.")
    wanted = {row["path"] for row in json.loads(split_path.read_text())["pictures"] if row["part"] == part}
    return [
        s for s in samples if str(Path(s.path).resolve().relative_to(data_dir.resolve())) in wanted or s.path in wanted
    ]


def composite_test_set(
    samples: Sequence[Sample], images: Sequence[Image.Image], count: int, *, seed: int = 0
) -> tuple[list[Image.Image], list[int]]:
    """``count`` small-phone composites and ``count`` distractor composites made only from the given pictures."""
    cutouts = plain_background_cutouts(
        [image for sample, image in zip(samples, images, strict=True) if sample.target == 1]
    )
    scenes = [image for sample, image in zip(samples, images, strict=True) if sample.target == 0]
    if count <= 0 or not cutouts or not scenes:
        return [], []
    factory = CompositeFactory(cutouts, scenes, scenes)
    rng = random.Random(seed)
    pictures, targets = [], []
    for _ in range(count):
        pictures += [factory.phone(rng), factory.distractor(rng)]
        targets += [1, 0]
    return pictures, targets


def run_evaluation(
    *,
    model: str | None,
    data_dir: Path,
    part: str = "test",
    composites: int = 200,
    multiscale_grid: int | None = None,
    report_path: str | None = None,
    seed: int = 0,
    split_from: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """The ``evaluate`` command: print figures for the split part, per source and for composites; write a report."""
    configure_torch_threads()
    model_dir = resolve_model_dir(model)
    classifier = load(model_dir, engine="torch")
    if multiscale_grid is not None:
        if not hasattr(classifier, "multiscale_grid"):
            raise ValueError(f"Model {classifier.version} does not support multi-scale inference.")
        classifier.multiscale_grid = multiscale_grid
    split_dir = resolve_model_dir(split_from) if split_from else model_dir
    samples = samples_in_part(split_dir, load_samples(data_dir), data_dir, part)
    if limit is not None and limit < len(samples):
        samples = sorted(random.Random(seed).sample(samples, limit), key=lambda sample: sample.path)
    draft = classifier.manifest.preprocessing.draft_size
    images = [open_image(sample.path, draft_size=draft) for sample in samples]
    shared = evaluate_images(classifier, images, [s.target for s in samples])
    results: dict[str, Any] = {
        "model": classifier.version,
        "part": part,
        "shared_set": shared.to_dict(),
        "by_source": {},
    }
    print(format_metrics(f"shared_set[{part}]", shared.metrics) + f" ms/img={shared.milliseconds_per_image:.1f}")
    sources = np.array([s.source for s in samples])
    for source in sorted(set(sources)):
        mask = sources == source
        metrics = binary_metrics(shared.probabilities[mask], shared.targets[mask], classifier.manifest.threshold)
        results["by_source"][source] = metrics.to_dict()
        print(format_metrics(f"  {source}", metrics))
    sections = [
        Section(
            f"Shared set ({part})",
            "shared",
            shared.probabilities,
            shared.targets,
            np.full(len(shared.targets), classifier.manifest.threshold),
        )
    ]
    pictures, targets = composite_test_set(samples, images, composites, seed=seed)
    if pictures:
        composite = evaluate_images(classifier, pictures, targets)
        results["composites"] = composite.to_dict()
        print(format_metrics("composites", composite.metrics) + f" ms/img={composite.milliseconds_per_image:.1f}")
        sections.append(
            Section(
                "Small-phone composites",
                "composites",
                composite.probabilities,
                composite.targets,
                np.full(len(composite.targets), classifier.manifest.threshold),
            )
        )
    path = Path(report_path) if report_path else model_dir / f"evaluation-{part}.md"
    write_report(
        path,
        f"Evaluation of {classifier.version} on {data_dir.name} ({part})",
        sections,
        [
            f"Command: `python -m ml_training evaluate --model {model or classifier.version} --data-dir DIR "
            f"--part {part} --composites {composites}`"
            + (f" --multiscale-grid {multiscale_grid}" if multiscale_grid is not None else "")
        ],
    )
    print(f"report: {path}")
    return results

"""``python -m ml_training evaluate``: measure any model version on labelled folders, per source and per slice.

The model is loaded through :func:`inference.loader.load` and judged through its public ``predict``, so the
figures are what the CLI, the API and the workers would produce: calibrated probabilities at the model's own
threshold, per source (``manifest.csv``'s ``source`` column, or the folder's name), for scenes and close-ups,
and, on pictures with known phone boxes, how often a phone verdict's best box contains a true phone's centre.
Works for every model kind (zero-shot, fine-tuned, scene detector).
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

from inference.contract import Classifier
from inference.images import open_image
from inference.loader import load, resolve_model_dir
from inference.prediction import PHONE, Prediction
from ml_training.data import Sample
from ml_training.metrics import Metrics, binary_metrics, format_metrics
from ml_training.scene.data import SceneSample, load_data_dirs
from ml_training.scene.figures import best_box_hits, figures_by_slice

PARTS = ("all", "test", "validation", "train")


@dataclass
class Evaluation:
    """Every picture's verdict from one model, and the figures they give at the model's threshold."""

    model: str
    engine: str
    threshold: float
    samples: list[SceneSample]
    predictions: list[Prediction]
    milliseconds_per_image: float

    @property
    def probabilities(self) -> np.ndarray:
        return np.array([prediction.probability for prediction in self.predictions], dtype=np.float64)

    @property
    def targets(self) -> np.ndarray:
        return np.array([sample.target for sample in self.samples], dtype=np.int64)

    @property
    def metrics(self) -> Metrics:
        """The figures over every picture, at the model's threshold."""
        return binary_metrics(self.probabilities, self.targets, self.threshold)

    def figures(self) -> dict[str, Any]:
        """Metrics for ``all``, ``scenes``, ``close-ups`` and every ``source:NAME``; ``boxes`` when any are known."""
        figures: dict[str, Any] = figures_by_slice(self.samples, self.probabilities, self.threshold)
        if any(sample.has_boxes for sample in self.samples):
            figures["boxes"] = best_box_hits(
                self.samples,
                [prediction.boxes for prediction in self.predictions],
                [prediction.label == PHONE for prediction in self.predictions],
            )
        return figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engine": self.engine,
            "pictures": len(self.samples),
            "milliseconds_per_image": round(self.milliseconds_per_image, 1),
            "figures": self.figures(),
        }


def evaluate_classifier(
    classifier: Classifier, samples: Sequence[SceneSample | Sample], *, batch_size: int = 16
) -> Evaluation:
    """Decode ``samples`` as inference does, a batch at a time, and judge them with ``classifier``.

    Plain :class:`~ml_training.data.Sample` lists (no boxes) are accepted too. Only prediction is timed (decoding
    is the web process's cost, not the model's).
    """
    scene_samples = [
        sample
        if isinstance(sample, SceneSample)
        else SceneSample(path=sample.path, label=sample.label, source=sample.source, group=sample.group)
        for sample in samples
    ]
    draft = classifier.manifest.preprocessing.draft_size
    predictions: list[Prediction] = []
    elapsed = 0.0
    for start in range(0, len(scene_samples), batch_size):
        images = [open_image(sample.path, draft_size=draft) for sample in scene_samples[start : start + batch_size]]
        started = time.perf_counter()
        predictions.extend(classifier.predict(images))
        elapsed += time.perf_counter() - started
    return Evaluation(
        model=classifier.version,
        engine=classifier.engine,
        threshold=classifier.manifest.threshold,
        samples=scene_samples,
        predictions=predictions,
        milliseconds_per_image=1000 * elapsed / max(1, len(scene_samples)),
    )


def samples_in_part(
    model_dir: Path, samples: Sequence[SceneSample], data_dirs: Sequence[Path], part: str
) -> list[SceneSample]:
    """The samples of one part of the train/validation/test split saved with the model (``all``: every sample).

    Only models trained with a held-out split have parts; a cross-validated model (the scene detector) has
    out-of-fold figures in its manifest instead, and asking it for a part is refused.
    """
    if part == "all":
        return list(samples)
    if part not in PARTS:
        raise ValueError(f"--part must be one of {', '.join(PARTS)}, not {part!r}.")
    split_path = model_dir / "split.json"
    split = json.loads(split_path.read_text()) if split_path.is_file() else {}
    if "pictures" not in split:
        raise ValueError(
            f"{model_dir.name} has no train/validation/test split (its figures are cross-validated, in its "
            "manifest); use --part all."
        )
    wanted = {row["path"] for row in split["pictures"] if row["part"] == part}
    roots = [Path(data_dir).resolve() for data_dir in data_dirs]

    def names(sample: SceneSample) -> set[str]:
        path = Path(sample.path).resolve()
        return {sample.path} | {str(path.relative_to(root)) for root in roots if path.is_relative_to(root)}

    return [sample for sample in samples if names(sample) & wanted]


def print_figures(evaluation: Evaluation, *, title: str) -> None:
    """One fixed-format line per slice, then the box hits."""
    figures = evaluation.figures()
    print(f"{title}: {len(evaluation.samples)} pictures, {evaluation.milliseconds_per_image:.1f} ms/picture")
    for name, values in figures.items():
        if name != "boxes":
            print("  " + format_metrics(name, Metrics(**values)))
    if "boxes" in figures:
        boxes = figures["boxes"]
        rate = "n/a" if boxes["best_box_hit_rate"] is None else f"{boxes['best_box_hit_rate']:.4f}"
        print(
            f"  boxes: best box holds a true phone centre in {boxes['best_box_hits']} of "
            f"{boxes['phone_verdicts_on_boxed_pictures']} phone verdicts on {boxes['boxed_pictures']} boxed "
            f"pictures (rate {rate})"
        )


def run_evaluation(
    *,
    model: str | None,
    data_dirs: Sequence[Path],
    part: str = "all",
    engine: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> dict[str, Any]:
    """The ``evaluate`` command: load the model, pick the pictures, judge them, print and return the figures."""
    model_dir = resolve_model_dir(model)
    # Pictures first: a wrong folder or part is reported before the model is loaded.
    samples = samples_in_part(model_dir, load_data_dirs(data_dirs), data_dirs, part)
    if not samples:
        raise ValueError(f"No pictures to evaluate in {', '.join(map(str, data_dirs))} (part {part}).")
    classifier = load(model_dir, engine=engine)
    if limit is not None and limit < len(samples):
        samples = sorted(random.Random(seed).sample(samples, limit), key=lambda sample: sample.path)
    evaluation = evaluate_classifier(classifier, samples)
    if not quiet:
        print_figures(evaluation, title=f"{classifier.version} on {classifier.engine} ({part})")
    return {**evaluation.to_dict(), "part": part}

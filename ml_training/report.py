"""Markdown reports with ROC, reliability and confusion-matrix plots, written next to a checkpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.manifest import read_manifest
from ml_training.metrics import binary_metrics, format_metrics, reliability_bins, roc_curve
from ml_training.plots import confusion_svg, reliability_svg, roc_svg

REPORT_NAME = "report.md"


@dataclass(frozen=True)
class Section:
    """One set of scored pictures in a report (e.g. the test fold, the composites)."""

    title: str
    slug: str
    probabilities: np.ndarray
    targets: np.ndarray
    thresholds: np.ndarray


def write_report(path: Path, title: str, sections: Sequence[Section], notes: Sequence[str] = ()) -> Path:
    """Write ``path`` (Markdown) and, beside it, three SVG plots per section; returns the report's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", *notes, ""]
    for section in sections:
        if len(section.targets) == 0:
            continue
        metrics = binary_metrics(section.probabilities, section.targets, section.thresholds)
        lines += [f"## {section.title}", "", "```", format_metrics(section.slug, metrics), "```", ""]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in metrics.to_dict().items()]
        plots = {"confusion": confusion_svg(metrics.confusion, section.title)}
        if len(np.unique(section.targets)) == 2:
            fpr, tpr = roc_curve(section.probabilities, section.targets)
            plots["roc"] = roc_svg(fpr.tolist(), tpr.tolist(), f"ROC: {section.title} (AUC {metrics.roc_auc:.4f})")
        plots["reliability"] = reliability_svg(
            reliability_bins(section.probabilities, section.targets),
            f"Reliability: {section.title} (ECE {metrics.ece:.4f})",
        )
        lines.append("")
        for kind, svg in plots.items():
            name = f"{path.stem}-{section.slug}-{kind}.svg"
            (path.parent / name).write_text(svg)
            lines.append(f"![{kind}]({name})")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def _section(title: str, slug: str, rows: list[dict]) -> Section:
    return Section(
        title=title,
        slug=slug,
        probabilities=np.array([row["probability"] for row in rows], dtype=np.float64),
        targets=np.array([row["target"] for row in rows], dtype=np.int64),
        thresholds=np.array([row["threshold"] for row in rows], dtype=np.float64),
    )


def write_training_report(model_dir: str | Path) -> Path:
    """The report of a freshly trained model, from the held-out predictions saved with it."""
    directory = Path(model_dir)
    manifest = read_manifest(directory)
    predictions = json.loads((directory / "predictions.json").read_text())
    sections = []
    for key, label in (("test", "test fold"), ("cross_validation", "cross-validation, out of fold")):
        rows = predictions.get(key, [])
        sections.append(_section(f"Shared set, {label}", f"{key}-shared", [r for r in rows if r["kind"] == "real"]))
        sections.append(
            _section(f"Small-phone composites, {label}", f"{key}-composites", [r for r in rows if r["kind"] != "real"])
        )
    notes = [
        f"Model `{manifest.version}` ({manifest.kind}, {manifest.architecture}); "
        f"temperature {manifest.temperature:.3f}, threshold {manifest.threshold:.3f}.",
        "",
        "Composites: phones cut out of held-out product photos pasted at 2-10% of the frame into held-out not_phone "
        "scenes (positives), and not_phone objects or phone-shaped patches pasted the same way (negatives).",
    ]
    return write_report(directory / "report.md", f"Training report: {manifest.version}", sections, notes)

"""Plain-text tables of model metrics for the commands' output."""

from __future__ import annotations

from typing import Any

ROWS = ("count", "accuracy", "precision", "recall", "f1", "roc_auc", "ece", "threshold")


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _confusion(metrics: dict[str, Any] | None) -> str:
    if not metrics or not metrics.get("confusion"):
        return "—"
    (tn, fp), (fn, tp) = metrics["confusion"]
    return f"TN={tn} FP={fp} FN={fn} TP={tp}"


def format_side_by_side(candidate: dict[str, Any], active: dict[str, Any] | None) -> str:
    """Candidate and active model metrics in two columns (the active column is empty without one)."""
    left = f"candidate {candidate.get('model_version', '')}"
    right = f"active {active.get('model_version', '')}" if active else "active (none)"
    lines = [f"{'metric':<12} {left:<32} {right:<32}"]
    for row in ROWS:
        lines.append(f"{row:<12} {_cell(candidate.get(row)):<32} {_cell((active or {}).get(row)):<32}")
    lines.append(f"{'confusion':<12} {_confusion(candidate):<32} {_confusion(active):<32}")
    return "\n".join(lines)


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """One model's metrics as a two-column table."""
    lines = [f"{'model':<12} {metrics.get('model_version', '')}"]
    lines += [f"{row:<12} {_cell(metrics.get(row))}" for row in ROWS]
    lines.append(f"{'confusion':<12} {_confusion(metrics)}")
    return "\n".join(lines)

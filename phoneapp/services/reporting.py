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


def format_trusted_scores(candidate: dict[str, Any], active: dict[str, Any] | None) -> str:
    """Candidate and active model on the same trusted pictures (ground truth, eval), one row per set and slice:
    right / pictures and accuracy."""
    left = f"candidate {candidate.get('model_version', '')}"
    right = f"active {active.get('model_version', '')}" if active else "active (none)"
    lines = [f"{'pictures':<28} {left:<32} {right:<32}"]
    for set_name in ("ground_truth", "eval"):
        for slice_name, row in candidate.get(set_name, {}).items():
            other = ((active or {}).get(set_name) or {}).get(slice_name)
            lines.append(f"{set_name + ' ' + slice_name:<28} {_score(row):<32} {_score(other):<32}")
    return "\n".join(lines)


def _score(row: dict[str, Any] | None) -> str:
    if not row or not row.get("count"):
        return "—"
    return f"{row['correct']}/{row['count']} ({_cell(row['accuracy'])})"


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """One model's metrics as a two-column table."""
    return "\n".join([f"{'model':<12} {metrics.get('model_version', '')}", *_metric_rows(metrics, indent="")])


def _metric_rows(metrics: dict[str, Any], *, indent: str) -> list[str]:
    """The table's rows (:data:`ROWS`, then the confusion matrix), names in a column 12 wide with ``indent``."""
    width = 12 - len(indent)
    rows = [f"{indent}{row:<{width}} {_cell(metrics.get(row))}" for row in ROWS]
    return [*rows, f"{indent}{'confusion':<{width}} {_confusion(metrics)}"]


SET_TITLES = {"ground_truth": "ground truth", "eval": "eval split"}


def format_evaluation(metrics: dict[str, Any]) -> str:
    """``manage.py evaluate``'s text: the pooled table, then one per picture set when it has them (``per_set``),
    as the retrain reports ground truth and the eval split apart."""
    blocks = [format_metrics_table(metrics)]
    for name, figures in (metrics.get("per_set") or {}).items():
        title = SET_TITLES.get(name, name)
        if not figures.get("count"):
            blocks.append(f"{title}: no pictures")
            continue
        blocks.append("\n".join([f"{title}:", *_metric_rows(figures, indent="  ")]))
    return "\n\n".join(blocks)

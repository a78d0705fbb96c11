"""ROC, reliability and confusion-matrix plots as small hand-written SVG files (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

SIZE, MARGIN = 320, 48


def _frame(title: str, x_label: str, y_label: str, body: str) -> str:
    plot = SIZE - 2 * MARGIN
    ticks = "".join(
        f'<text x="{MARGIN + plot * t:.1f}" y="{SIZE - MARGIN + 16}" font-size="10" text-anchor="middle">{t:.1f}</text>'
        f'<text x="{MARGIN - 6}" y="{SIZE - MARGIN - plot * t + 3:.1f}" font-size="10" text-anchor="end">{t:.1f}</text>'
        for t in (0.0, 0.25, 0.5, 0.75, 1.0)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" font-family="sans-serif">'
        f'<rect width="{SIZE}" height="{SIZE}" fill="white"/>'
        f'<text x="{SIZE / 2}" y="20" font-size="13" text-anchor="middle">{escape(title)}</text>'
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{plot}" height="{plot}" fill="none" stroke="#444"/>{ticks}'
        f'<text x="{SIZE / 2}" y="{SIZE - 10}" font-size="11" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="14" y="{SIZE / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {SIZE / 2})">{escape(y_label)}</text>{body}</svg>\n'
    )


def _point(x: float, y: float) -> str:
    plot = SIZE - 2 * MARGIN
    return f"{MARGIN + plot * x:.1f},{SIZE - MARGIN - plot * y:.1f}"


def roc_svg(false_positive_rates: Sequence[float], true_positive_rates: Sequence[float], title: str) -> str:
    """The ROC curve with the chance diagonal."""
    curve = " ".join(_point(x, y) for x, y in zip(false_positive_rates, true_positive_rates, strict=True))
    body = (
        f'<polyline points="{_point(0, 0)} {_point(1, 1)}" fill="none" stroke="#bbb" stroke-dasharray="4"/>'
        f'<polyline points="{curve}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
    )
    return _frame(title, "false positive rate", "true positive rate", body)


def reliability_svg(bins: Sequence[tuple[float, float, int]], title: str) -> str:
    """Observed share of phones against predicted probability per bin; dot area grows with the bin's count."""
    largest = max((count for _, _, count in bins), default=1)
    dots = "".join(
        f'<circle cx="{_point(p, o).split(",")[0]}" cy="{_point(p, o).split(",")[1]}" '
        f'r="{2 + 6 * (count / largest) ** 0.5:.1f}" fill="#d62728" fill-opacity="0.7"/>'
        for p, o, count in bins
    )
    line = " ".join(_point(p, o) for p, o, _ in bins)
    body = (
        f'<polyline points="{_point(0, 0)} {_point(1, 1)}" fill="none" stroke="#bbb" stroke-dasharray="4"/>'
        f'<polyline points="{line}" fill="none" stroke="#d62728"/>{dots}'
    )
    return _frame(title, "predicted probability of phone", "observed share of phones", body)


def confusion_svg(confusion: Sequence[Sequence[int]], title: str) -> str:
    """The 2x2 confusion matrix, rows true class, columns predicted class, shaded by row share."""
    labels = ("not_phone", "phone")
    cell = (SIZE - 2 * MARGIN) / 2
    parts = []
    for row in range(2):
        total = max(1, sum(confusion[row]))
        for column in range(2):
            count = confusion[row][column]
            shade = int(255 - 180 * count / total)
            x, y = MARGIN + column * cell, MARGIN + row * cell
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="#444"/>'
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 6}" font-size="18" text-anchor="middle">{count}</text>'
            )
        parts.append(
            f'<text x="{MARGIN - 4}" y="{MARGIN + row * cell + cell / 2}" font-size="10" text-anchor="end">'
            f"{labels[row]}</text>"
            f'<text x="{MARGIN + row * cell + cell / 2}" y="{MARGIN - 6}" font-size="10" text-anchor="middle">'
            f"{labels[row]}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" font-family="sans-serif">'
        f'<rect width="{SIZE}" height="{SIZE}" fill="white"/>'
        f'<text x="{SIZE / 2}" y="18" font-size="13" text-anchor="middle">{escape(title)}</text>{"".join(parts)}'
        f'<text x="{SIZE / 2}" y="{SIZE - 14}" font-size="11" text-anchor="middle">'
        "predicted (columns) / true (rows)</text>"
        "</svg>\n"
    )

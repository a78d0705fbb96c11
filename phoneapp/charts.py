"""Small server-rendered SVG charts for the dashboard: no JavaScript, no charting library, no CDN.

Each function returns a complete ``<svg>`` element as a string (every text escaped here), scaled by its
``viewBox`` so it fills its container on a desktop and on a phone. Charts carry ``role="img"`` and a title;
the page puts the same numbers in a table next to each chart for screen readers and for copying. An empty chart
says so in its title too: ``role="img"`` hides the words drawn inside it ("Nothing reviewed yet"), and the page
has no table for it, so a screen reader heard only the chart's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 400
FONT = 'font-family="system-ui, sans-serif" font-size="14"'
TEXT = "#1d2430"
MUTED = "#5b6472"
GRID = "#dde1e6"
ACCENT = "#1f5fbf"
PHONE = "#17703a"
NOT_PHONE = "#a23b3b"
UNSURE = "#b7791f"
WAITING = "#8a94a3"
FAILED = "#3b3f46"


@dataclass(frozen=True)
class Segment:
    label: str
    value: float
    color: str


def _svg(height: int, title: str, body: list[str], chart_id: str) -> str:
    title_id = f"{chart_id}-title"
    return (
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{escape(title_id)}" xmlns="http://www.w3.org/2000/svg" {FONT}>'
        f'<title id="{escape(title_id)}">{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def column_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    chart_id: str,
    color: str = ACCENT,
    label_every: int = 1,
    height: int = 200,
    bands: Sequence[tuple[float, float, str, str]] = (),
    markers: Sequence[tuple[float, str, str]] = (),
    labels_at_edges: bool = False,
    end_label: str = "",
) -> str:
    """Vertical bars with a light grid; ``bands`` shade (start, end, colour, caption) spans of the x axis given as
    fractions of its width (the histogram's unsure band), ``markers`` draw (position, colour, caption) vertical
    lines (the threshold). ``labels_at_edges`` puts each label under the left edge of its bar (a histogram's bin
    boundaries) instead of its middle, and ``end_label`` under the axis' right end (the last boundary). Labels are
    counted from the last bar, so the latest one (today) is always labelled, with a tick under its bar."""
    left, right, top, bottom = 34, 8, 12, 28
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    peak = _nice_max(max(values, default=0))
    slot = plot_w / max(1, len(values))
    body: list[str] = []
    for start, end, band_color, caption in bands:
        x = left + start * plot_w
        body.append(
            f'<rect x="{x:.1f}" y="{top}" width="{(end - start) * plot_w:.1f}" height="{plot_h}" '
            f'fill="{band_color}" fill-opacity="0.14"/>'
            f'<text x="{x + 4:.1f}" y="{top + 12}" fill="{MUTED}" font-size="12">{escape(caption)}</text>'
        )
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        body.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">{_number(peak * fraction)}</text>'
        )
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar_h = plot_h * value / peak
        x = left + index * slot + slot * 0.12
        body.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{slot * 0.76:.1f}" height="{bar_h:.1f}" '
            f'fill="{color}" rx="1.5"><title>{escape(label)}: {_number(value)}</title></rect>'
        )
        labelled = index % label_every == 0 if labels_at_edges else (len(values) - 1 - index) % label_every == 0
        if labelled:
            label_x = left + index * slot if labels_at_edges else x + slot * 0.38
            last = index == len(values) - 1 and not labels_at_edges
            body.append(
                f'<line x1="{label_x:.1f}" x2="{label_x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                f'stroke="{MUTED}"/>'
                f'<text x="{label_x + (slot * 0.5 if last else 0):.1f}" y="{height - 10}" '
                f'text-anchor="{"end" if last else "middle"}" fill="{MUTED}" font-size="12">{escape(label)}</text>'
            )
    if end_label:
        body.append(
            f'<line x1="{left + plot_w:.1f}" x2="{left + plot_w:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            f'stroke="{MUTED}"/><text x="{left + plot_w:.1f}" y="{height - 10}" text-anchor="end" fill="{MUTED}" '
            f'font-size="12">{escape(end_label)}</text>'
        )
    for position, marker_color, caption in markers:
        x = left + position * plot_w
        anchor = "end" if position > 0.5 else "start"
        offset = -4 if position > 0.5 else 4
        body.append(
            f'<line class="chart-marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{marker_color}" stroke-width="2" stroke-dasharray="4 3"/>'
            f'<text x="{x + offset:.1f}" y="{top + 28}" text-anchor="{anchor}" fill="{marker_color}" '
            f'font-size="12">{escape(caption)}</text>'
        )
    return _svg(height, title, body, chart_id)


def stacked_bar(segments: Sequence[Segment], *, title: str, chart_id: str) -> str:
    """One horizontal bar split into coloured parts, with a legend giving each part's count and share."""
    total = sum(segment.value for segment in segments)
    legend_rows = (len(segments) + 1) // 2
    height = 56 + legend_rows * 22
    body: list[str] = []
    x = 0.0
    if total <= 0:
        title = f"{title}: no uploads yet"
        body.append(f'<rect x="0" y="8" width="{WIDTH}" height="32" fill="{GRID}" rx="4"/>')
        body.append(f'<text x="{WIDTH / 2}" y="29" text-anchor="middle" fill="{MUTED}">No uploads yet</text>')
    for segment in segments:
        if total <= 0 or segment.value <= 0:
            continue
        width = WIDTH * segment.value / total
        body.append(
            f'<rect x="{x:.1f}" y="8" width="{width:.1f}" height="32" fill="{segment.color}">'
            f"<title>{escape(segment.label)}: {_number(segment.value)}</title></rect>"
        )
        x += width
    for index, segment in enumerate(segments):
        column, row = index % 2, index // 2
        lx, ly = column * WIDTH / 2, 62 + row * 22
        share = f" ({segment.value / total:.0%})" if total > 0 else ""
        body.append(
            f'<rect x="{lx:.1f}" y="{ly - 11}" width="12" height="12" fill="{segment.color}" rx="2"/>'
            f'<text x="{lx + 18:.1f}" y="{ly}" fill="{TEXT}">{escape(segment.label)}: '
            f"{_number(segment.value)}{share}</text>"
        )
    return _svg(height, title, body, chart_id)


def percent_bars(rows: Sequence[tuple[str, float, str]], *, title: str, chart_id: str) -> str:
    """Horizontal 0-100 % bars, one per row of (label, fraction, caption): the label above its bar (model
    version names are long), the caption after it."""
    caption_w, row_h = 92, 46
    height = max(1, len(rows)) * row_h + 4
    plot_w = WIDTH - caption_w
    body: list[str] = []
    if not rows:
        title = f"{title}: nothing reviewed yet"
        body.append(f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" fill="{MUTED}">Nothing reviewed yet</text>')
    for index, (label, fraction, caption) in enumerate(rows):
        y = 4 + index * row_h
        body.append(
            f'<text x="0" y="{y + 13}" fill="{TEXT}">{escape(_shorten(label, 44))}<title>{escape(label)}</title></text>'
            f'<rect x="0" y="{y + 20}" width="{plot_w}" height="18" fill="{GRID}" rx="3"/>'
            f'<rect x="0" y="{y + 20}" width="{plot_w * max(0.0, min(1.0, fraction)):.1f}" height="18" '
            f'fill="{PHONE}" rx="3"/>'
            f'<text x="{plot_w + 8}" y="{y + 34}" fill="{TEXT}" font-weight="600">{escape(caption)}</text>'
        )
    return _svg(height, title, body, chart_id)


def confusion_grid(
    rows: Sequence[tuple[str, str]],
    columns: Sequence[tuple[str, str]],
    counts: dict[tuple[str, str], int],
    *,
    title: str,
    chart_id: str,
) -> str:
    """A grid of (row, column) counts: rows are the reviewers' labels, columns the model's verdicts; cells where
    they agree in green, an "unsure" column in amber, the others in red, shaded by their share of all counted."""
    label_w, head_h = 104, 44
    cell = (WIDTH - label_w) / max(1, len(columns))
    cell_h = 64
    height = head_h + len(rows) * cell_h + 4
    total = sum(counts.values())
    if not total:
        title = f"{title}: nothing reviewed yet"
    body = [
        f'<text x="{label_w + (WIDTH - label_w) / 2:.1f}" y="14" text-anchor="middle" fill="{MUTED}" '
        'font-size="12">model said</text>',
        f'<text x="4" y="{head_h - 10}" fill="{MUTED}" font-size="12">reviewer said</text>',
    ]
    row_keys = {key for key, _ in rows}
    for column, (_, name) in enumerate(columns):
        body.append(
            f'<text x="{label_w + column * cell + cell / 2:.1f}" y="{head_h - 10}" text-anchor="middle" '
            f'fill="{TEXT}" font-weight="600">{escape(name)}</text>'
        )
    for row, (actual, actual_name) in enumerate(rows):
        y = head_h + row * cell_h
        body.append(
            f'<text x="{label_w - 8}" y="{y + cell_h / 2 + 5:.1f}" text-anchor="end" fill="{TEXT}" '
            f'font-weight="600">{escape(actual_name)}</text>'
        )
        for column, (predicted, _) in enumerate(columns):
            value = counts.get((actual, predicted), 0)
            share = value / total if total else 0.0
            color = PHONE if actual == predicted else NOT_PHONE if predicted in row_keys else UNSURE
            # Tints stay light enough for dark numbers to keep 4.5:1 contrast at any share.
            opacity = 0.1 + 0.45 * share
            x = label_w + column * cell
            body.append(
                f'<rect x="{x + 2:.1f}" y="{y + 2}" width="{cell - 4:.1f}" height="{cell_h - 4}" fill="{color}" '
                f'fill-opacity="{opacity:.2f}" rx="4"/>'
                f'<text x="{x + cell / 2:.1f}" y="{y + cell_h / 2 + 6:.1f}" text-anchor="middle" fill="{TEXT}" '
                f'font-size="18" font-weight="700">{value}</text>'
            )
    return _svg(height, title, body, chart_id)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

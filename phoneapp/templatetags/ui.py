"""Template helpers: a verdict as words and a probability bar ("Phone — 97% chance of a phone"), and the form's limits.

The verdict word, the bar's unsure band and its threshold mark all come from the rule of the model version that
judged the upload (:mod:`phoneapp.selectors.decisions`), so the word and the number cannot contradict each other.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

from django import template
from django.conf import settings
from django.forms import BoundField
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from phoneapp.models import SecondReview, Upload, UploadStatus
from phoneapp.selectors.decisions import SURE_PLACE, upload_decision_rule, upload_display_state, upload_verdict
from phoneapp.services.heatmaps import HeatmapOffer, upload_heatmap_offer, upload_heatmap_servable
from phoneapp.services.stored_pictures import stored_picture_missing

register = template.Library()


@register.filter
def menu_section(path: str) -> str:
    """The main menu's entry a page belongs to, by the first part of its address within the site (``path_info``,
    so a site served under a prefix too): "account" for /account/api-token/, "review" for /review/12/, "upload" for
    the home page. The menu marks that entry as the current page."""
    return path.strip("/").partition("/")[0] or "upload"


@register.filter
def verdict_state(upload: Upload) -> str:
    """One word for styling and for upload.js: phone, not_phone, unsure, pending, processing or failed."""
    return upload_display_state(upload=upload)


@register.filter
def verdict_word(upload: Upload) -> str:
    verdict = upload_verdict(upload=upload)
    return verdict.label if verdict is not None else upload.get_status_display()


@register.filter
def heatmap_servable(upload: Upload) -> bool:
    """Offer the "where is the phone" overlay only when ``/uploads/<id>/heatmap`` can serve it (see
    :func:`phoneapp.services.heatmaps.upload_heatmap_servable`)."""
    return upload_heatmap_servable(upload=upload)


@register.filter
def heatmap_offer(upload: Upload) -> HeatmapOffer:
    """What the picture's caption says of the overlay: offered, not drawn yet, or why it cannot be (see
    :func:`phoneapp.services.heatmaps.upload_heatmap_offer`); one call, so storage is asked once per page."""
    return upload_heatmap_offer(upload=upload)


# An upload pending longer than this is waiting out a busy or stopped worker (or broker): its verdict says so, so
# that "Pending…" does not read as stuck. upload.js uses the same number (PENDING_NOTE_AFTER_MS).
PENDING_NOTE_AFTER_SECONDS = 30
PENDING_NOTE = "Saved. The classifier is busy or paused; the verdict appears here when it is back."


@register.filter
def pending_note(upload: Upload) -> str:
    """What a verdict waiting longer than :data:`PENDING_NOTE_AFTER_SECONDS` adds to "Pending…" (else nothing)."""
    if upload.status != UploadStatus.PENDING or upload.created is None:
        return ""
    waited = (timezone.now() - upload.created).total_seconds()
    return PENDING_NOTE if waited > PENDING_NOTE_AFTER_SECONDS else ""


@register.simple_tag
def pending_note_settings() -> str:
    """The note and its delay as ``data-`` attributes for upload.js, which says the same on cards it draws itself:
    one wording and one delay, written here only."""
    return format_html(
        'data-pending-note="{}" data-pending-note-after-ms="{}"', PENDING_NOTE, PENDING_NOTE_AFTER_SECONDS * 1000
    )


@register.filter
def picture_missing(upload: Upload) -> bool:
    """Whether the picture file is gone from storage (one storage query: detail, review and admin pages only)."""
    return stored_picture_missing(upload=upload)


@register.filter
def phone_percent(upload: Upload) -> int:
    """The probability of "phone" in whole percent, for the bar's length."""
    return _half_up((upload.probability or 0) * 100)


def phone_chance_percent(upload: Upload) -> str:
    """The probability of "phone" in whole percent as the pages say it: "97%", and "over 99%" / "under 1%" at the
    ends, where "100%" claimed a certainty no model has (a probability of 0.996 rounds to it). The admin's upload
    list says it so too."""
    percent = phone_percent(upload)
    return "over 99%" if percent >= 100 else "under 1%" if percent <= 0 else f"{percent}%"


@register.filter
def phone_chance(upload: Upload) -> str:
    """The probability of "phone" as the verdict says it: "97% chance of a phone" (:func:`phone_chance_percent`).
    upload.js says the same (chanceText)."""
    return f"{phone_chance_percent(upload)} chance of a phone"


@register.filter
def review_summary(upload: Upload) -> str:
    """What reviewers made of the picture, as its owner reads it: the ground truth staff set, or a reviewer's label
    with whether it stands yet. "Phone (2026-12-07)" alone read as the final answer while a second reviewer
    disputed it, and after staff settled it the other way."""
    if upload.ground_truth_label:
        return f"{upload.get_ground_truth_label_display()}, confirmed by staff ({_day(upload.ground_truth_at)})"
    if not upload.reviewed_label:
        return "not reviewed yet"
    said = f"{upload.get_reviewed_label_display()} ({_day(upload.reviewed_at)})"
    if upload.second_review == SecondReview.WAITING:
        return f"{said}, waiting for a second reviewer; until then the model's answer stands"
    if upload.second_review == SecondReview.DISAGREED:
        return f"{said}, disputed by a second reviewer; until staff settle it the model's answer stands"
    return said


def _day(moment: datetime | None) -> str:
    return date_format(timezone.localtime(moment), "Y-m-d") if moment else "—"


@register.simple_tag
def upload_limits() -> dict[str, int]:
    """The limits the upload form announces (and upload.js checks before sending)."""
    return {"max_files": settings.UPLOAD_MAX_FILES, "max_bytes": settings.UPLOAD_MAX_BYTES}


@register.simple_tag
def decision_bar(upload: Upload) -> dict[str, object]:
    """The bar's geometry in percent (the unsure band of the upload's model version and its threshold), and its
    legend, shown on hover: the band and the threshold meant nothing to a reader without it. upload.js draws the
    same bar (bar, barLegend) with the same arithmetic, so a card drawn live and the page after a reload agree to
    the tenth of a percent (Python's round() took 32.65 to 32.6, JavaScript to 32.7)."""
    rule = upload_decision_rule(upload=upload)
    low, high = _half_up(rule.unsure_low * 1000) / 10, _half_up(rule.unsure_high * 1000) / 10
    return {
        "low": low,
        "width": _half_up((high - low) * 10) / 10,
        "threshold": _half_up(rule.threshold * 1000) / 10,
        "legend": (
            f"Phone above {_band_edge_percent(rule.unsure_high)}%, not a phone below "
            f"{_band_edge_percent(rule.unsure_low)}%, unsure in between (the shaded band)"
        ),
    }


def _band_edge_percent(fraction: float) -> str:
    """A band edge in whole percent, with a decimal or two only where whole percent says 0 or 100: a retrain's band
    ending at 0.9995 read "Phone above 100%", a version that could never say phone. upload.js's bandEdgePercent
    says the same."""
    for places in (0, 1, 2):
        scale = 10**places
        scaled = _half_up(fraction * 100 * scale)
        if 0 < scaled < 100 * scale:
            return f"{scaled / scale:.{places}f}"
    return f"{_half_up(fraction * 10000) / 100:.2f}"


def _half_up(percent: float) -> int:
    """Rounded as JavaScript's Math.round rounds (Python's round() rounds halves to even): the page drawn by the
    server and the card drawn by upload.js say the same numbers."""
    return math.floor(percent + 0.5)


@register.filter
def verdict_alt(upload: Upload) -> str:
    """Alt text of the picture: what it is and what the model said, for people who cannot see it."""
    verdict = upload_verdict(upload=upload)
    if verdict is not None:
        return f"{upload.original_name}: judged {verdict.label.lower()}, {phone_chance(upload)}"
    return f"{upload.original_name} ({upload.get_status_display().lower()})"


@register.filter
def box_rects(upload: Upload) -> list[dict[str, object]]:
    """The model's boxes in percent of the picture (x, y, width, height, score, whether the place is sure);
    malformed entries are skipped."""
    rects: list[dict[str, object]] = []
    for entry in upload.predicted_boxes or []:
        try:
            x1, y1, x2, y2 = (min(max(float(value), 0.0), 1.0) for value in entry["box"])
            score = float(entry.get("score", 0.0))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if x2 > x1 and y2 > y1:
            sure, percent = score >= SURE_PLACE, _percent(score)
            rects.append(
                {
                    "x": round(x1 * 100, 2),
                    "y": round(y1 * 100, 2),
                    "width": round((x2 - x1) * 100, 2),
                    "height": round((y2 - y1) * 100, 2),
                    "percent": percent,
                    "sure": sure,
                    "said": f"{'phone in' if sure else 'the phone may be in'} {box_place_words((x1, y1, x2, y2))}"
                    f" ({percent}%)",
                }
            )
    return rects


@register.filter
def boxes_said(rects: list[dict[str, object]]) -> str:
    """The overlay's text for people who cannot see it: how many phones and where each is ("2 phones found by the
    model: phone in the top left, 20% of the picture wide (91%); ..."); boxes.js says the same."""
    count = len(rects)
    return f"{count} phone{'s' if count != 1 else ''} found by the model: " + "; ".join(str(r["said"]) for r in rects)


def box_place_words(box: tuple[float, float, float, float]) -> str:
    """Where a box is, in words: which third of the picture its centre is in, and how wide it is ("the top left,
    20% of the picture wide"). boxes.js (placeWords) words it the same way."""
    x1, y1, x2, y2 = box
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    row = "top" if centre_y < 1 / 3 else "bottom" if centre_y > 2 / 3 else "middle"
    column = "left" if centre_x < 1 / 3 else "right" if centre_x > 2 / 3 else "centre"
    where = "centre" if (row, column) == ("middle", "centre") else f"{row} {column}"
    return f"the {where}, {max(1, _percent(x2 - x1))}% of the picture wide"


def _percent(fraction: float) -> int:
    """Rounded half up, as JavaScript's Math.round (Python's round() goes to even: 0.125 -> 12, not 13)."""
    return math.floor(fraction * 100 + 0.5)


@register.filter
def box_corners_json(boxes: object) -> str:
    """Boxes (``[{"box": [x1, y1, x2, y2], ...}, ...]``) as a JSON list of corner lists for the review page's box
    editor; malformed entries are skipped (the template escapes it into an attribute)."""
    return json.dumps([corners for corners, _ in _editor_boxes(boxes)])


@register.filter
def box_scores_json(boxes: object) -> str:
    """The model's score of each box :func:`box_corners_json` keeps, in the same order (``null`` for a reviewer's
    box): the editor draws the model's guesses dashed with their score, as every other page does."""
    return json.dumps([score for _, score in _editor_boxes(boxes)])


def _editor_boxes(boxes: object) -> list[tuple[list[float], float | None]]:
    kept = []
    for entry in boxes if isinstance(boxes, list) else []:
        try:
            x1, y1, x2, y2 = (min(max(float(value), 0.0), 1.0) for value in entry["box"])
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        score = entry.get("score") if isinstance(entry, dict) else None
        if x2 > x1 and y2 > y1:
            corners = [round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4)]
            kept.append((corners, float(score) if isinstance(score, int | float) else None))
    return kept


@register.filter
def marked_invalid(field: BoundField, error_id: str) -> str:
    """The field's input, marked invalid and tied to the form's error message (``aria-invalid``,
    ``aria-describedby``) when its form was refused: a screen reader on the field then says why (WCAG 3.3.1)."""
    if not field.form.errors:
        return str(field)
    return field.as_widget(attrs={"aria-invalid": "true", "aria-describedby": error_id})

"""How a model version turns a probability into a verdict: its threshold and its unsure band.

Every place that shows or sorts verdicts (the verdict words and bar, the API, the review order, the admin's
confidence filter, the dashboard) reads them through :func:`model_version_decision_rule` -- one upload at a time
through :func:`upload_verdict`, querysets through ``UploadQuerySet.with_verdict()`` (``unsure()``,
``confident()``), which is the same rule in SQL -- and each upload is judged by the rule of the model version
that produced it, so the word and the number never contradict each other.

Where the figures come from, in order:

1. the version's ``manifest.json``: ``threshold`` (a calibrated probability) and, when the training run wrote one,
   ``unsure_band: [low, high]`` -- the probabilities where the model was least reliable on its validation data;
2. without ``unsure_band``, a band derived from the threshold: the probabilities whose log-odds are within
   ``DERIVED_BAND_LOGIT_MARGIN`` (1.0) of the threshold's, i.e. odds within a factor e (about 2.7) of the odds at the
   threshold. For a threshold of 0.5 that is 27%-73%; for 0.93, 83%-97%;
3. the ``UNSURE_BAND`` setting, when set (an operator's override, e.g. ``0.2,0.8``), replaces the band of every
   version.

Whatever the source, the band is widened to contain the threshold, so that outside it the verdict word (the
model's label, decided by that threshold) always agrees with the side of the band the probability is on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db.models import Case, F, FloatField, Q, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Greatest, Least, Ln

from inference.manifest import ModelLoadError, read_manifest
from phoneapp.models import UNSETTLED_REVIEWS, Label, ModelVersion, Upload, UploadStatus, Verdict

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
DERIVED_BAND_LOGIT_MARGIN = 1.0
# Probabilities are clipped to this distance from 0 and 1 before taking log-odds (a stored 1.0 is infinite odds).
_EPSILON = 1e-6


def logit(probability: float) -> float:
    """Log-odds of ``probability``, clipped so 0 and 1 stay finite."""
    clipped = min(max(probability, _EPSILON), 1 - _EPSILON)
    return math.log(clipped / (1 - clipped))


@dataclass(frozen=True)
class DecisionRule:
    """A model version's threshold and unsure band (calibrated probabilities, ``low <= threshold <= high``)."""

    threshold: float
    unsure_low: float
    unsure_high: float
    source: str  # "manifest", "derived" (from the threshold) or "setting" (UNSURE_BAND override)

    def is_unsure(self, probability: float | None) -> bool:
        return probability is not None and self.unsure_low <= probability <= self.unsure_high

    def verdict(self, *, probability: float | None, predicted_label: str) -> str:
        """``phone``, ``not_phone`` or ``unsure``; ``""`` without a probability (there is no verdict to show)."""
        if probability is None or not predicted_label:
            return ""
        return Verdict.UNSURE if self.is_unsure(probability) else predicted_label

    def uncertainty(self, probability: float) -> float:
        """Distance from the threshold in log-odds, in units of the band's half on that side: 0 at the threshold,
        1 at the band's edge, above 1 outside it. Sorting by it puts the band first, closest to the threshold
        first."""
        return _scaled_distance(logit(probability), self)

    def to_dict(self) -> dict[str, object]:
        return {"threshold": self.threshold, "unsure_band": [self.unsure_low, self.unsure_high]}


def _scaled_distance(log_odds: float, rule: DecisionRule) -> float:
    centre = logit(rule.threshold)
    if log_odds >= centre:
        return (log_odds - centre) / max(logit(rule.unsure_high) - centre, 1e-3)
    return (centre - log_odds) / max(centre - logit(rule.unsure_low), 1e-3)


def model_version_decision_rule(*, version: ModelVersion | None) -> DecisionRule:
    """The threshold and unsure band that judge uploads of ``version`` (see the module docstring for the rule).

    An unreadable or missing manifest (a version whose folder was removed) gives the default threshold 0.5
    and its derived band; it never raises, because pages must render whatever happened to the model files.
    """
    if version is None:
        threshold, band = DEFAULT_THRESHOLD, None
    else:
        threshold, band = _manifest_decision(str(_model_dir(version)), version.checksum)
    return _rule(threshold=threshold, band=band)


def _rule(*, threshold: float, band: tuple[float, float] | None) -> DecisionRule:
    override = tuple(settings.UNSURE_BAND or ())
    if len(override) == 2:
        low, high, source = float(override[0]), float(override[1]), "setting"
    elif band is not None:
        low, high, source = band[0], band[1], "manifest"
    else:
        centre = logit(threshold)
        low = 1 / (1 + math.exp(-(centre - DERIVED_BAND_LOGIT_MARGIN)))
        high = 1 / (1 + math.exp(-(centre + DERIVED_BAND_LOGIT_MARGIN)))
        source = "derived"
    return DecisionRule(
        threshold=threshold, unsure_low=min(low, threshold), unsure_high=max(high, threshold), source=source
    )


def _model_dir(version: ModelVersion) -> Path:
    from phoneapp.services.model_versions import model_dir_of

    return model_dir_of(version)


@lru_cache(maxsize=64)
def _manifest_decision(model_dir: str, checksum: str) -> tuple[float, tuple[float, float] | None]:
    """(threshold, unsure band or None) from a version's manifest, read by inference's own parser (which checks
    the band); cached per folder and checksum (a manifest never changes under the same checksum, and a retrained
    version gets a new one)."""
    try:
        manifest = read_manifest(model_dir)
    except ModelLoadError as error:
        logger.warning("model manifest unreadable; default threshold used", extra={"path": model_dir, "error": error})
        return DEFAULT_THRESHOLD, None
    if not 0 < manifest.threshold < 1:
        return DEFAULT_THRESHOLD, None
    return manifest.threshold, manifest.unsure_band


def upload_decision_rule(*, upload: Upload) -> DecisionRule:
    """The rule of the model version that judged ``upload`` (the active one's figures do not apply to it)."""
    return model_version_decision_rule(version=upload.model_version)


def upload_has_verdict(*, upload: Upload) -> bool:
    """Whether ``upload`` was classified and has the probability its verdict, threshold, unsure band and boxes
    are judged from: what the API, the CSV export and :func:`upload_verdict` all ask before showing any of them
    (each once wrote the rule itself). ``models.HAS_VERDICT`` is the same rule in SQL."""
    return upload.status == UploadStatus.DONE and upload.probability is not None


def upload_final_label(*, upload: Upload) -> str | None:
    """The answer that stands for the picture: its ground truth (staff settled it), else a reviewer's label once it
    is settled (no second review needed, or a second reviewer agreed), else the model's label; None before any.
    A first review that contradicts a confident verdict is not the answer until a second reviewer agrees: shown as
    final, a label two reviewers disputed stayed the owner's answer after staff settled it the other way.
    ``selectors.uploads`` filters by the same rule in SQL (``label=`` of the history and the API)."""
    if upload.ground_truth_label:
        return upload.ground_truth_label
    if upload.reviewed_label and upload.second_review not in UNSETTLED_REVIEWS:
        return upload.reviewed_label
    return upload.predicted_label if upload_has_verdict(upload=upload) and upload.predicted_label else None


def upload_verdict(*, upload: Upload) -> Verdict | None:
    """Phone, not a phone or unsure, by the rule of the version that judged it; None while there is no verdict
    (pending, processing, failed). A done upload always has a probability (a database constraint), so a verdict is
    never shown without one."""
    if not upload_has_verdict(upload=upload):
        return None
    rule = upload_decision_rule(upload=upload)
    said = rule.verdict(probability=upload.probability, predicted_label=upload.predicted_label)
    return Verdict(said) if said else None


def upload_display_state(*, upload: Upload) -> str:
    """One word for the pages' styling and upload.js: the verdict (phone, not_phone, unsure) or, while there is
    none, the status (pending, processing, failed)."""
    verdict = upload_verdict(upload=upload)
    return verdict.value if verdict is not None else upload.status


# A box whose own score is below this is a guess at the place, "the phone may be here": the pages draw it dashed and
# the review queue asks about it early. Its verdict can still be a confident "phone" (many weak cells add up;
# docs/model.md, "Where the phone is"). boxes.js holds the same number for verdicts drawn without a reload.
SURE_PLACE = 0.5


def upload_place_unsure(*, upload: Upload) -> bool:
    """Whether the model calls ``upload`` a phone, outside its unsure band, but its best box is only a guess (own
    score below ``SURE_PLACE``): the pictures where a reviewer's box teaches retraining the most (out of fold,
    scene-lite0-v5's best boxes under 0.5 held the phone in 30 of 169)."""
    if upload_verdict(upload=upload) != Label.PHONE:
        return False
    try:
        best_score = float(upload.predicted_boxes[0]["score"])
    except (IndexError, KeyError, TypeError, ValueError):
        return False
    return best_score < SURE_PLACE


def unsure_place_q() -> Q:
    """:func:`upload_place_unsure` in SQL, for querysets annotated by ``with_verdict()`` (JSON index lookups work
    on SQLite and PostgreSQL alike)."""
    return Q(verdict=Label.PHONE, predicted_boxes__0__score__lt=SURE_PLACE)


def _log_odds_expression() -> Combinable:
    clipped = Least(Greatest(F("probability"), Value(_EPSILON)), Value(1 - _EPSILON))
    return Ln(clipped / (Value(1.0) - clipped), output_field=FloatField())


def uncertainty_expression() -> Case:
    """:meth:`DecisionRule.uncertainty` in SQL, each upload by its own model version's rule (``<= 1`` = inside the
    unsure band); null for uploads without a probability. Querysets reach it through ``Upload.objects``'
    ``with_uncertainty()``, ``with_verdict()``, ``unsure()`` and ``confident()``."""
    log_odds = _log_odds_expression()
    whens: list[When] = []
    rules: list[tuple[int | None, DecisionRule]] = [
        (version.pk, model_version_decision_rule(version=version)) for version in ModelVersion.objects.all()
    ]
    rules.append((None, model_version_decision_rule(version=None)))
    for version_id, rule in rules:
        centre = logit(rule.threshold)
        above = max(logit(rule.unsure_high) - centre, 1e-3)
        below = max(centre - logit(rule.unsure_low), 1e-3)
        same_version = Q(model_version__isnull=True) if version_id is None else Q(model_version_id=version_id)
        threshold_q = Q(probability__gte=rule.threshold)
        whens.append(When(same_version & threshold_q, then=(log_odds - Value(centre)) / Value(above)))
        whens.append(When(same_version & ~threshold_q, then=(Value(centre) - log_odds) / Value(below)))
    return Case(*whens, default=Value(None), output_field=FloatField())

"""Scoring model versions on the trusted pictures, and the rule deciding whether a candidate replaces the active one.

Both the candidate and the active version are scored per picture on the same ground-truth set and eval split
(:mod:`phoneapp.services.training_data`); :func:`decide_promotion` applies :data:`PROMOTION_RULE` to the paired
tests; the scores are stored (``VersionScore``) so the dashboard compares versions on the same pictures.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.utils import timezone

from inference.manifest import ModelLoadError
from inference.prediction import NOT_PHONE, PHONE
from ml_training.metrics import SIGNIFICANCE, PairedTest
from phoneapp.models import ModelVersion, VersionScore
from phoneapp.services.evaluation import files_phone_probabilities
from phoneapp.services.model_versions import classifier_load, model_dir_of
from phoneapp.services.training_data import LABELS, TrustedPicture

logger = logging.getLogger(__name__)


# Ground truth needs this many pictures of each label before any automatic promotion: with fewer, a paired test
# cannot tell a worse model from a lucky one.
MIN_GROUND_TRUTH_PER_LABEL = 10


PROMOTION_RULE = (
    "The candidate becomes active automatically only when (1) the ground-truth set (staff-confirmed labels, never "
    f"trained on) has at least {MIN_GROUND_TRUTH_PER_LABEL} pictures of each label, (2) on the ground-truth set "
    "the candidate is right on at least as many pictures as the active model, and a paired McNemar test on the "
    f"pictures where they disagree does not find it worse (one-sided exact p < {SIGNIFICANCE}), and (3) the same "
    "holds on the eval split (a fixed 20% of reviewed pictures, never trained on); an active version that cannot "
    "be loaded to compare with counts as not shown. Otherwise it is registered inactive with the reason; "
    "--activate is a person's decision to activate it anyway."
)


Log = Callable[[str], None]


ProgressFactory = Callable[[str, int], Callable[[int], None]]


def decide_promotion(
    *,
    ground_truth_per_label: dict[str, int],
    tests: dict[str, PairedTest],
    has_active: bool,
    force: bool,
    active_unscorable: str | None = None,
    uninformative: str | None = None,
) -> tuple[bool, str]:
    """(promote?, the reason in words) by :data:`PROMOTION_RULE`; ``force`` is ``--activate``;
    ``active_unscorable``: why an active version exists but could not be scored (nothing shows the candidate is
    not worse than it, so it is not promoted); ``uninformative``: why the candidate's calibration shows it cannot
    tell phones apart (its verdicts would all read alike, whatever it scores on a few trusted pictures)."""
    # Said before any suggestion to activate it by hand: a candidate right on 7 of 10 ground-truth pictures against
    # the active model's 10 was refused only for "too little ground truth", which read as "nothing known against it".
    worse_said = _worse_as_measured(tests)
    if force:
        # Kept with the version (its admin page, the activation page): our first retrain's forced candidate, right
        # on 9 fewer of 30 ground-truth pictures, was recorded as activated with nothing said of that.
        warning = f" Warning: {uninformative}." if uninformative else ""
        return True, (
            f"activated because --activate was given (a person's decision; the rule was not applied).{warning}"
            f"{worse_said}"
        )
    if uninformative:
        return False, (
            f"not promoted: {uninformative}.{worse_said} Registered inactive: activate it yourself only on purpose "
            "(the admin's 'Activate this version', or manage.py activate_model NAME)."
        )
    if active_unscorable:
        return False, (
            f"not promoted: {active_unscorable}. Registered inactive: repair or replace the active version, or "
            "activate this one yourself (the admin's 'Activate this version', or manage.py activate_model NAME)."
        )
    missing = {label: MIN_GROUND_TRUTH_PER_LABEL - ground_truth_per_label.get(label, 0) for label in LABELS}
    missing = {label: count for label, count in missing.items() if count > 0}
    if missing:
        needed = " and ".join(f"{count} more {label}" for label, count in missing.items())
        have = ", ".join(f"{ground_truth_per_label.get(label, 0)} {label}" for label in LABELS)
        suggestion = "; activate it yourself only on purpose" if worse_said else ", or activate it yourself"
        return False, (
            f"not promoted: too little ground truth to judge (it has {have}; {needed} needed, at least "
            f"{MIN_GROUND_TRUTH_PER_LABEL} of each label).{worse_said} Registered inactive: mark reviewed uploads as "
            f"ground truth (admin action or G in the review queue){suggestion} (the admin's 'Activate this "
            "version', or manage.py activate_model NAME)."
        )
    if not has_active:
        return True, "promoted: there is no active model to compare with."
    # Right on fewer pictures is worse as measured, even when too few pictures disagree for the test to be
    # significant: with 20 ground-truth pictures, 8 against 2 is p = 0.055, and repeated retrains could slide.
    worse = [name for name, test in tests.items() if test.candidate_worse or _right_on_fewer(test)]
    details = "; ".join(paired_test_words(name, test) for name, test in tests.items())
    if worse:
        reasons = "; ".join(
            f"on {name} it is right on fewer pictures ({test.only_candidate_right} only it gets right, "
            f"{test.only_baseline_right} only the active model does)"
            if not test.candidate_worse
            else f"on {name} it is significantly worse (p = {test.p_candidate_worse:.4f})"
            for name, test in tests.items()
            if name in worse
        )
        return False, f"not promoted: {reasons} ({details})."
    return True, f"promoted: not worse than the active model on ground truth or eval ({details})."


def paired_test_words(name: str, test: PairedTest) -> str:
    """One set's paired test as the decision words it ("eval: candidate alone right on 2, active alone on 8,
    p(candidate worse) = 0.0547"): the text report prints these too, so the two read alike."""
    return (
        f"{name}: candidate alone right on {test.only_candidate_right}, active alone on {test.only_baseline_right}, "
        f"p(candidate worse) = {test.p_candidate_worse:.4f}"
    )


def paired_tests_lines(paired_tests: dict[str, dict[str, Any]]) -> list[str]:
    """The report's ``paired_tests`` (:meth:`PairedTest.to_dict`) in the decision's words, for the retrain's text
    report: without ``--json`` its p values were shown nowhere unless the decision happened to quote them (it does
    not when it refuses for too little ground truth or a flat calibration). Empty when nothing was compared."""
    if not paired_tests:
        return []
    lines = ["paired tests (McNemar, one-sided, on the pictures where exactly one model is right):"]
    for name, entry in paired_tests.items():
        test = PairedTest(
            pictures=entry["pictures"],
            only_baseline_right=entry["active_only_right"],
            only_candidate_right=entry["candidate_only_right"],
        )
        lines.append(f"  {paired_test_words(name, test)}")
    return lines


def _right_on_fewer(test: PairedTest) -> bool:
    """Right on fewer of the pictures than the active model: worse as measured, significant or not."""
    return test.only_candidate_right < test.only_baseline_right


def _worse_as_measured(tests: dict[str, PairedTest]) -> str:
    """A sentence saying on which sets the candidate was right on fewer pictures than the active model, and by how
    many (" On the pictures it was scored on it is worse than the active model: right on 3 fewer of the 10
    ground_truth pictures."); empty when it was not, or nothing was compared."""
    fewer = [
        f"{test.only_baseline_right - test.only_candidate_right} fewer of the {test.pictures} {name} pictures"
        for name, test in tests.items()
        if _right_on_fewer(test)
    ]
    if not fewer:
        return ""
    return f" On the pictures it was scored on it is worse than the active model: right on {' and '.join(fewer)}."


def dry_run_decision(decision: str) -> str:
    """A dry run's decision: what the rule says, without the registering it did not do."""
    said = decision.split(" Registered inactive:", 1)[0]
    return f"dry run, nothing registered; the rule says: {said}"


class ActiveUnscorable(Exception):
    """There is an active version, and it cannot be loaded to score the trusted pictures."""


def progress_of(factory: ProgressFactory | None, label: str, total: int) -> Callable[[int], None] | None:
    return factory(label, total) if factory is not None else None


def model_dir_score(
    model_dir: Path,
    ground_truth: list[TrustedPicture],
    evaluation: list[TrustedPicture],
    progress: ProgressFactory | None,
    label: str,
) -> dict[str, list[bool]]:
    both = ground_truth + evaluation
    right = _right_answers(model_dir, both, progress_of(progress, label, len(both)))
    return {"ground_truth": right[: len(ground_truth)], "eval": right[len(ground_truth) :]}


def active_version_score(
    active: ModelVersion | None,
    ground_truth: list[TrustedPicture],
    evaluation: list[TrustedPicture],
    progress: ProgressFactory | None,
    log: Log,
) -> dict[str, list[bool]] | None:
    """The active version's right/wrong per trusted picture; None when there is no active version. Raises
    :class:`ActiveUnscorable` when there is one that cannot be loaded."""
    if active is None:
        return None
    try:
        return model_dir_score(
            model_dir_of(active), ground_truth, evaluation, progress, f"scoring active {active.name}"
        )
    except ModelLoadError as error:
        log(f"active model {active.name} cannot be loaded ({error}): the candidate cannot be compared with it")
        raise ActiveUnscorable(
            f"the active model {active.name} could not be loaded to compare with ({error})"
        ) from error


def _right_answers(
    model_dir: Path, pictures: list[TrustedPicture], advance: Callable[[int], None] | None
) -> list[bool]:
    classifier = classifier_load(model_dir=model_dir, engine="torch")
    threshold = classifier.manifest.threshold
    probabilities = files_phone_probabilities(classifier, [picture.path for picture in pictures], advance=advance)
    return [
        (probability >= threshold) == (picture.label == PHONE)
        for picture, probability in zip(pictures, probabilities, strict=True)
    ]


def _digest(pictures: Sequence[TrustedPicture]) -> str:
    return hashlib.sha256("\n".join(sorted(picture.sha256 for picture in pictures)).encode()).hexdigest()


def score_figures(right: dict[str, list[bool]], trusted: dict[str, list[TrustedPicture]]) -> dict[str, Any]:
    """Per picture set and slice: count, correct, accuracy, false positives and negatives, the pictures' digest."""
    figures: dict[str, Any] = {}
    for set_name, pictures in trusted.items():
        by_slice: dict[str, list[tuple[TrustedPicture, bool]]] = {}
        for picture, is_right in zip(pictures, right[set_name], strict=True):
            for name in picture.slices:
                by_slice.setdefault(name, []).append((picture, is_right))
        by_slice.setdefault("all", [])
        figures[set_name] = {
            name: {
                "count": len(rows),
                "correct": sum(is_right for _, is_right in rows),
                "accuracy": round(sum(is_right for _, is_right in rows) / len(rows), 4) if rows else None,
                "false_positives": sum(not r and p.label == NOT_PHONE for p, r in rows),
                "false_negatives": sum(not r and p.label == PHONE for p, r in rows),
                "pictures_digest": _digest([p for p, _ in rows]),
            }
            for name, rows in sorted(by_slice.items())
        }
    return figures


def version_scores_store(
    version: ModelVersion, figures: dict[str, Any], trusted: dict[str, list[TrustedPicture]]
) -> None:
    now = timezone.now()
    VersionScore.objects.bulk_create(
        VersionScore(
            version=version,
            picture_set=set_name,
            slice=slice_name,
            count=row["count"],
            correct=row["correct"],
            accuracy=row["accuracy"] if row["accuracy"] is not None else 0.0,
            false_positives=row["false_positives"],
            false_negatives=row["false_negatives"],
            pictures_digest=row["pictures_digest"],
            created=now,
        )
        for set_name in trusted
        for slice_name, row in figures[set_name].items()
        if row["count"]
    )

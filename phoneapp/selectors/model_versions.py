"""Reading the registry of model versions: which exist, which one is active, how each last scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from phoneapp.errors import NotFound
from phoneapp.models import ModelVersion, VersionScore


class ModelVersionNotFound(NotFound):
    """No model version by that name."""


def model_version_active_or_none() -> ModelVersion | None:
    """The active version, or None before any is registered (``services.model_versions.model_version_active``
    registers the shipped ones first)."""
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_get(*, name: str) -> ModelVersion:
    """The version called ``name``; :class:`ModelVersionNotFound` naming the known ones otherwise."""
    try:
        return ModelVersion.objects.get(name=name)
    except ModelVersion.DoesNotExist as error:
        known = ", ".join(model_version_names())
        raise ModelVersionNotFound(f"No model version {name!r}. Known: {known}.") from error


def model_version_names() -> list[str]:
    """Every registered version's name, newest first."""
    return list(ModelVersion.objects.values_list("name", flat=True))


def model_version_list() -> list[ModelVersion]:
    """Every registered version, the active one first, then newest first (an operator choosing one to roll back
    to reads the current one, then the most recent)."""
    return list(ModelVersion.objects.order_by("-is_active", "-created", "-id"))


def model_version_latest_score(*, version: ModelVersion, picture_set: str) -> VersionScore | None:
    """The version's latest score on ``picture_set`` (ground truth or eval), over all its pictures."""
    return version.scores.filter(picture_set=picture_set, slice="all").order_by("-created").first()


def model_version_figure_sets(*, metrics: Any, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every dict of figures (one with an ``accuracy``) inside a version's metrics, named by its path."""
    if not isinstance(metrics, dict):
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(metrics.get("accuracy"), int | float):
        found.append((prefix or "overall", metrics))
    for key, value in metrics.items():
        if isinstance(value, dict):
            found.extend(model_version_figure_sets(metrics=value, prefix=f"{prefix} › {key}" if prefix else key))
    return found


def model_version_headline_figures(*, metrics: Any) -> tuple[str, dict[str, Any]]:
    """The figures the version list shows and the set they were measured on: cross-validation on the shared set
    when measured, else the test set's, else whichever set comes first (older manifests keep them at the top).
    ("", {}) for a version with no figures."""
    sets = dict(model_version_figure_sets(metrics=metrics))
    names = ("overall", "cross_validation › shared_set", "cross_validation › all", "test › shared_set")
    for name in (*names, "validation › shared_set"):
        if name in sets:
            return name, sets[name]
    return next(iter(sets.items()), ("", {}))


@dataclass(frozen=True)
class SameSetScores:
    """Two versions' scores on the same pictures of one trusted set (the same ``pictures_digest``)."""

    picture_set: VersionScore.Set
    correct: int
    active_correct: int
    count: int

    @property
    def fewer_right(self) -> bool:
        return self.correct < self.active_correct


@dataclass(frozen=True)
class ActivationComparison:
    """What is known of a version against the active one before a person activates it: their scores on the same
    pictures (``sets``, empty when they were never scored on the same pictures) and the retrain's decision about it
    (None for a version no retrain registered)."""

    version: ModelVersion
    active: ModelVersion | None
    sets: list[SameSetScores]
    retrain_decision: str | None

    @property
    def worse(self) -> bool:
        """Right on fewer of the same pictures than the active version in some set."""
        return any(scores.fewer_right for scores in self.sets)


def model_version_compare_with_active(*, version: ModelVersion) -> ActivationComparison:
    """``version`` against the version active now, on the same pictures: per trusted set, the newest of its scores
    (slice "all") that the active version also has on the same pictures. A retrain stores both versions' scores, so
    a candidate is comparable with the version it was measured against while that one is still active; against
    another, only if they were once scored on the same pictures.

    Three queries however many scores there are (the active version, then each version's scores once): it asked
    for the active version's score once per score of ``version`` until one matched, and every retrain measured
    against another active version adds one that does not."""
    active = model_version_active_or_none()
    sets: list[SameSetScores] = []
    if active is not None and active.pk != version.pk:
        active_newest = _newest_score_per_pictures(active)
        scores = _scores_newest_first(version)
        for picture_set in VersionScore.Set:
            compared = _newest_comparable(scores, picture_set, active_newest)
            if compared is not None:
                score, active_score = compared
                sets.append(
                    SameSetScores(
                        picture_set=picture_set,
                        correct=score.correct,
                        active_correct=active_score.correct,
                        count=score.count,
                    )
                )
    decision = version.metrics.get("decision") if isinstance(version.metrics, dict) else None
    return ActivationComparison(
        version=version, active=active, sets=sets, retrain_decision=decision if isinstance(decision, str) else None
    )


def _scores_newest_first(version: ModelVersion) -> list[VersionScore]:
    """Every score of ``version`` over all its pictures (slice "all"), newest first, in one query."""
    return list(version.scores.filter(slice="all").order_by("-created", "-pk"))


def _newest_score_per_pictures(version: ModelVersion) -> dict[tuple[str, str], VersionScore]:
    """``version``'s newest score (slice "all") per trusted set and pictures (``pictures_digest``)."""
    newest: dict[tuple[str, str], VersionScore] = {}
    for score in _scores_newest_first(version):
        newest.setdefault((score.picture_set, score.pictures_digest), score)
    return newest


def _newest_comparable(
    scores: list[VersionScore], picture_set: str, active_newest: dict[tuple[str, str], VersionScore]
) -> tuple[VersionScore, VersionScore] | None:
    """The newest of ``scores`` (a version's, newest first) on ``picture_set`` whose pictures the active version
    was also scored on, with the active version's newest score on them; None when they never shared pictures."""
    for score in scores:
        if score.picture_set == picture_set:
            active_score = active_newest.get((picture_set, score.pictures_digest))
            if active_score is not None:
                return score, active_score
    return None

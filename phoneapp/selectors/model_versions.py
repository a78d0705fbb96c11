"""Reading the registry of model versions: which exist, which one is active, how each last scored."""

from __future__ import annotations

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


def model_version_headline_figures(*, metrics: Any) -> dict[str, Any]:
    """The figures the version list shows: cross-validation on the shared set when measured, else the test set's,
    else whichever set comes first (older manifests keep them at the top)."""
    sets = dict(model_version_figure_sets(metrics=metrics))
    names = ("overall", "cross_validation › shared_set", "cross_validation › all", "test › shared_set")
    for name in (*names, "validation › shared_set"):
        if name in sets:
            return sets[name]
    return next(iter(sets.values()), {})

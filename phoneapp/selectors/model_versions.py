"""Reading the registry of model versions: which exist, which one is active, how each last scored."""

from __future__ import annotations

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


def model_version_latest_score(*, version: ModelVersion, picture_set: str) -> VersionScore | None:
    """The version's latest score on ``picture_set`` (ground truth or eval), over all its pictures."""
    return version.scores.filter(picture_set=picture_set, slice="all").order_by("-created").first()

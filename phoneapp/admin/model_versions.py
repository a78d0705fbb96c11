"""Model versions in the Django admin: their scores, figures and verdict rule, and activating one only after a
comparison with the active version."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from inference.manifest import ModelLoadError
from phoneapp.models import ModelVersion, VersionScore
from phoneapp.selectors.decisions import model_version_decision_rule
from phoneapp.selectors.model_versions import (
    model_version_compare_with_active,
    model_version_figure_sets,
    model_version_headline_figures,
    model_version_latest_score,
)
from phoneapp.services.model_versions import model_version_activate_if_loadable

logger = logging.getLogger(__name__)


# Shown and read-only alike (one tuple: both admin options accept it, so the type checker does too).
_SCORE_FIELDS = (
    "created",
    "picture_set",
    "slice",
    "correct",
    "count",
    "accuracy",
    "false_positives",
    "false_negatives",
)


class VersionScoreInline(admin.TabularInline):
    """Each retrain's scores of this version on the trusted pictures (same digest = same pictures)."""

    model = VersionScore
    fields = _SCORE_FIELDS
    readonly_fields = _SCORE_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _latest_score(version: ModelVersion, picture_set: str) -> str:
    score = model_version_latest_score(version=version, picture_set=picture_set)
    return f"{score.correct}/{score.count} ({score.accuracy:.1%})" if score else "—"


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "is_active",
        "created",
        "ground_truth_score",
        "eval_score",
        "accuracy",
        "f1",
        "roc_auc",
        "measured_on",
        "threshold",
        "checksum_short",
    ]
    # No filter sidebar: it took 300 px, which cut the threshold and checksum off at 1280 px, to filter a list of a
    # few versions by "active", which is always the first row: the active version first, then the newest.
    ordering = ["-is_active", "-created", "-id"]
    readonly_fields = [
        "name",
        "path",
        "checksum",
        "created",
        "is_active",
        "decision",
        "retrain_decision",
        "figures",
        "metrics",
    ]
    inlines = [VersionScoreInline]
    exclude = ["data_summary"]
    actions = ["activate_version"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions are registered by `manage.py retrain` or shipped in trained_models/

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        # A row mirrors a folder in MODELS_DIR: deleted here, the next sync registered it again (and a deleted
        # active version quietly gave way to trained_models/ACTIVE, undoing a rollback). Retire a version by
        # removing its folder; activate another with the action.
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Every field is read-only: no Save buttons that save nothing.
        no_saving = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **no_saving})

    @admin.display(description="checksum")
    def checksum_short(self, version: ModelVersion) -> str:
        return version.checksum[:12]

    def _metric(self, version: ModelVersion, name: str) -> str:
        _, figures = model_version_headline_figures(metrics=version.metrics)
        value = figures.get(name)
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    @admin.display(description="threshold")
    def threshold(self, version: ModelVersion) -> str:
        return f"{model_version_decision_rule(version=version).threshold:.3f}"

    @admin.display(description="verdict rule")
    def decision(self, version: ModelVersion) -> str:
        """The rule the pages apply (:meth:`DecisionRule.verdict`): "phone" only above the unsure band, which holds
        the threshold. It read "phone when P(phone) ≥ 0.581; unsure between 0.581 and 1.000" for a retrain whose
        band ends at 0.9995: every picture from 58% to 99.95% is shown Unsure, and its top was rounded to 1."""
        rule = model_version_decision_rule(version=version)
        source = {"manifest": "from the manifest", "derived": "derived from the threshold", "setting": "UNSURE_BAND"}
        return (
            f"phone above {rule.unsure_high:.4f}, not a phone below {rule.unsure_low:.4f}, unsure from "
            f"{rule.unsure_low:.4f} to {rule.unsure_high:.4f} (threshold {rule.threshold:.4f}; band "
            f"{source.get(rule.source, rule.source)})"
        )

    @admin.display(description="ground truth (latest)")
    def ground_truth_score(self, version: ModelVersion) -> str:
        return _latest_score(version, VersionScore.Set.GROUND_TRUTH)

    @admin.display(description="eval split (latest)")
    def eval_score(self, version: ModelVersion) -> str:
        return _latest_score(version, VersionScore.Set.EVAL)

    @admin.display(description="promotion")
    def retrain_decision(self, version: ModelVersion) -> str:
        """The retrain's decision and the rule it applied (empty for shipped versions)."""
        from phoneapp.services.promotion import PROMOTION_RULE

        decision = (version.metrics or {}).get("decision") if isinstance(version.metrics, dict) else None
        return f"{decision} Rule: {PROMOTION_RULE}" if decision else "—"

    @admin.display(description="figures")
    def figures(self, version: ModelVersion) -> SafeString:
        return render_to_string("admin/phoneapp/model_figures.html", {"rows": figure_rows(version.metrics)})

    @admin.display(description="accuracy")
    def accuracy(self, version: ModelVersion) -> str:
        return self._metric(version, "accuracy")

    @admin.display(description="F1")
    def f1(self, version: ModelVersion) -> str:
        return self._metric(version, "f1")

    @admin.display(description="ROC-AUC")
    def roc_auc(self, version: ModelVersion) -> str:
        return self._metric(version, "roc_auc")

    @admin.display(description="pictures")
    def measured_on(self, version: ModelVersion) -> str:
        """How many pictures, of which set, the accuracy, F1 and ROC-AUC beside it come from: a retrain
        cross-validated on 15 reviewed uploads showed its accuracy beside a shipped model's 2,595-picture one with
        nothing to tell them apart."""
        name, figures = model_version_headline_figures(metrics=version.metrics)
        count = figures.get("count")
        if not isinstance(count, int):
            return "—"
        kind = {"cross_validation": "CV", "test": "test set", "validation": "validation set"}
        return f"{count:,} ({kind.get(name.split(' › ')[0], name)})"

    @admin.action(permissions=["change"], description="Activate this version (workers switch to it within seconds)")
    def activate_version(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> TemplateResponse | None:
        """Asks first, on a page saying what is known of the version against the active one on the same pictures
        (delete_selected's pattern: the page posts the action back with ``post=yes``): a candidate right on 7 of
        10 ground-truth pictures against the active model's 10 was activated in one click, with no warning."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return None
        chosen = queryset.get()
        comparison = model_version_compare_with_active(version=chosen)
        # The page compared against the version active when it was shown (``active_seen``): if another became
        # active since, the comparison is asked for again rather than confirmed against a version no longer active.
        active_now = str(comparison.active.pk) if comparison.active else "none"
        confirmed = request.POST.get("post") == "yes"
        if not confirmed or request.POST.get("active_seen") != active_now:
            context = {
                **self.admin_site.each_context(request),
                "title": f"Activate {chosen.name}?",
                "opts": self.model._meta,
                "media": self.media,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "comparison": comparison,
                "active_seen": active_now,
                "active_changed": confirmed,
            }
            return TemplateResponse(request, "admin/phoneapp/modelversion/activate_confirmation.html", context)
        try:
            # No export here: it takes seconds of CPU, too long for a web request; workers convert it themselves.
            version = model_version_activate_if_loadable(version=chosen, prepare_export=False)
        except ModelLoadError:
            logger.exception("activation refused: model unavailable", extra={"model_version": chosen.name})
            self.message_user(
                request,
                f"Not activated: the files of {chosen.name} (or of its second opinion) are missing or changed on "
                "disk, so workers could not load it. The active model is unchanged; details are in the log.",
                messages.ERROR,
            )
            return None
        # Not starting with the name: the admin capitalises the first letter of every message.
        self.message_user(
            request,
            f"Activated {version.name}: workers switch to it within seconds, classifying with the version they hold "
            "until it is ready on their machine.",
            messages.SUCCESS,
        )
        return None


FIGURE_COLUMNS = ("count", "accuracy", "precision", "recall", "f1", "roc_auc", "false_positive_rate", "ece")


def figure_rows(metrics: Any) -> list[dict[str, Any]]:
    """One table row per measured set, each figure formatted, for the version's change page."""
    rows = []
    for name, figures in model_version_figure_sets(metrics=metrics):
        cells = []
        for column in FIGURE_COLUMNS:
            value = figures.get(column)
            cells.append(str(value) if column == "count" and value is not None else _format_figure(value))
        rows.append({"name": name, "cells": cells})
    return rows


def _format_figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"

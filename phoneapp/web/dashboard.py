"""The staff dashboard: volume, verdicts and reviewed accuracy as server-rendered SVG charts plus tables."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from phoneapp import charts
from phoneapp.models import Label, Verdict
from phoneapp.selectors.dashboard import HISTOGRAM_BINS, DashboardData, dashboard_data
from phoneapp.selectors.decisions import DecisionRule, model_version_decision_rule
from phoneapp.selectors.training import review_agreement, version_score_history
from phoneapp.web.access import staff_required

DAYS = 30


@staff_required
@require_GET
def dashboard_page(request: HttpRequest) -> HttpResponse:
    data = dashboard_data(days=DAYS, model_version=request.GET.get("model", ""))
    context = {
        "data": data,
        "charts": _charts(data),
        "days": DAYS,
        "rule": _active_rule(data),
        "versions": version_score_history(),
        "agreement": review_agreement(),
    }
    return render(request, "phoneapp/dashboard.html", context)


def _active_rule(data: DashboardData) -> DecisionRule | None:
    return model_version_decision_rule(version=data.active_version) if data.active_version else None


def _charts(data: DashboardData) -> dict[str, str]:
    """Every chart as SVG markup; :mod:`phoneapp.charts` escapes all text, so marking it safe is sound."""
    rule = _active_rule(data)
    split = data.split
    bin_edges = [index / HISTOGRAM_BINS for index in range(HISTOGRAM_BINS)]
    rendered = {
        "per_day": charts.column_chart(
            [day.day.strftime("%d %b") for day in data.days],
            [day.count for day in data.days],
            title=f"Uploads per day, last {len(data.days)} days",
            chart_id="chart-per-day",
            label_every=7,
        ),
        "split": charts.stacked_bar(
            [
                charts.Segment("Phone", split.phone, charts.PHONE),
                charts.Segment("Not a phone", split.not_phone, charts.NOT_PHONE),
                charts.Segment("Unsure", split.unsure, charts.UNSURE),
                charts.Segment("Waiting", split.waiting, charts.WAITING),
                charts.Segment("Failed", split.failed, charts.FAILED),
            ],
            title="Verdict split of all uploads",
            chart_id="chart-split",
        ),
        "accuracy": charts.percent_bars(
            [(row.label, row.accuracy, f"{row.accuracy:.0%} of {row.reviewed}") for row in data.accuracy],
            title="Reviewed accuracy per model version",
            chart_id="chart-accuracy",
        ),
        "confusion": charts.confusion_grid(
            [(Label.PHONE, "Phone"), (Label.NOT_PHONE, "Not a phone")],
            [(verdict, verdict.label) for verdict in (Verdict.PHONE, Verdict.UNSURE, Verdict.NOT_PHONE)],
            data.confusion.counts,
            title="Confusion matrix of reviewed uploads",
            chart_id="chart-confusion",
        ),
        "histogram": charts.column_chart(
            [f"{edge:.1f}" for edge in bin_edges],
            data.histogram,
            title="Probability of phone, done uploads, with the active model's threshold and unsure band",
            chart_id="chart-histogram",
            color=charts.ACCENT,
            label_every=4,
            bands=[(rule.unsure_low, rule.unsure_high, charts.UNSURE, "unsure")] if rule else [],
            markers=[(rule.threshold, charts.TEXT, f"threshold {rule.threshold:.2f}")] if rule else [],
            labels_at_edges=True,
            end_label="1.0",
        ),
    }
    return {name: mark_safe(svg) for name, svg in rendered.items()}

"""The review queue for staff: one picture at a time, most uncertain first, every decision saved at once.

Works as plain forms (each button posts and lands on the next picture); ``review.js`` adds the keyboard:
P = phone, N = not a phone, C = confirm the model, arrow keys to move. With JavaScript the decision is posted
with ``fetch`` and answered with JSON naming the next picture.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from phoneapp.models import Label, Upload
from phoneapp.review_selectors import review_next_after, review_place, review_queue_first, review_upload_get
from phoneapp.services.reviews import upload_review, uploads_confirm_predictions
from phoneapp.web.access import staff_required

CONFIRM = "confirm"
DECISIONS = (*Label.values, CONFIRM)


@staff_required
@require_GET
def review_start(request: HttpRequest) -> HttpResponse:
    """The most uncertain unreviewed picture, or a page saying the queue is empty."""
    first = review_queue_first()
    if first is None:
        return render(request, "phoneapp/review_empty.html")
    return redirect("review-item", upload_id=first.pk)


@staff_required
@require_GET
def review_item(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = review_upload_get(upload_id=upload_id)
    place = review_place(upload=upload)
    return render(request, "phoneapp/review.html", {"upload": upload, "place": place})


@staff_required
@require_POST
def review_decide(request: HttpRequest, upload_id: int) -> HttpResponse:
    """Save one decision (``phone``, ``not_phone`` or ``confirm``) and move on to the next picture."""
    upload = review_upload_get(upload_id=upload_id)
    decision = request.POST.get("decision", "")
    wants_json = "application/json" in request.headers.get("Accept", "")
    if decision not in DECISIONS:
        message = "Unknown decision: use phone, not_phone or confirm."
        if wants_json:
            return JsonResponse({"error": message}, status=400)
        messages.error(request, message)
        return redirect("review-item", upload_id=upload.pk)
    _decide(upload=upload, decision=decision, reviewer=request.user)
    decided = review_upload_get(upload_id=upload.pk)
    next_id = review_next_after(upload=decided)
    next_url = reverse("review-item", args=[next_id]) if next_id else reverse("review")
    if wants_json:
        return JsonResponse(
            {"id": decided.pk, "reviewed_label": decided.reviewed_label, "next_id": next_id, "next_url": next_url}
        )
    messages.success(request, f"Saved: {decided.original_name} is {decided.get_reviewed_label_display().lower()}.")
    return redirect(next_url)


def _decide(*, upload: Upload, decision: str, reviewer: object) -> None:
    if decision == CONFIRM:
        uploads_confirm_predictions(uploads=Upload.objects.filter(pk=upload.pk), reviewer=reviewer)
    else:
        upload_review(upload=upload, label=decision, reviewer=reviewer)

"""The review queue for staff: one picture at a time, most uncertain first, every decision saved at once.

Works as plain forms (each button posts and lands on the next picture); ``review.js`` adds the keyboard:
P = phone, N = not a phone, C = confirm the model (not offered when the model is unsure), S = skip, U or Ctrl+Z =
undo, arrow keys to move, Z = zoom, B = draw a box around a phone (arrows move it, Shift+arrows size it, Enter
saves it), G = the decision is ground truth. Boxes (drawn, corrected or deleted; the mouse and touch drag too) are
posted with the decision as ``boxes`` (JSON). With JavaScript a decision is posted with ``fetch`` and answered with JSON
naming the next picture.

The reviewer's session remembers what they decided (for "← Previous" and undo, up to ``HISTORY_LENGTH``
decisions), what they skipped (left to the end of the queue) and which picture's decision or skip handed out each
picture ("← Previous" from it goes back there).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from phoneapp.models import Label, SecondReview, Upload, Verdict
from phoneapp.selectors.decisions import upload_place_unsure, upload_verdict
from phoneapp.selectors.review_queue import (
    review_earlier_label,
    review_next_after,
    review_place,
    review_queue_first,
    review_upload_exists,
    review_upload_get,
)
from phoneapp.services.ground_truth import PriorGroundTruth, ground_truth_restore
from phoneapp.services.review_claims import upload_review_claim
from phoneapp.services.reviews import (
    CONFIRM,
    BadBoxes,
    PriorReview,
    ReviewConflict,
    ReviewDisputed,
    ReviewNeedsChoice,
    dispute_words,
    review_boxes_parse,
    upload_review_decide,
    upload_review_state,
    uploads_review_restore,
)
from phoneapp.signed_in import SignedInRequest
from phoneapp.web.access import staff_required

DECISIONS = (*Label.values, CONFIRM)
# Marking ground truth in the queue needs what the admin's ground-truth actions need.
GROUND_TRUTH_PERMISSION = "phoneapp.change_upload"
GROUND_TRUTH_REFUSED = (
    "Only staff allowed to change uploads (the phoneapp permission) may mark ground truth: it decides which model "
    "version is promoted. Nothing was saved; decide without G, or ask an administrator for the permission."
)
HISTORY_LENGTH = 200
# [{"id": shown upload, "prior": [PriorReview dicts], "prior_ground_truth": [PriorGroundTruth dicts]}], oldest first
SESSION_LOG = "review_log"
SESSION_SKIPPED = "review_skipped"
# {shown upload id (str): the upload whose decision or skip handed it out}: where ← leads from an undecided picture
SESSION_ARRIVED_FROM = "review_arrived_from"


def _log(request: HttpRequest) -> list[dict]:
    return list(request.session.get(SESSION_LOG, []))


def _history(request: HttpRequest) -> list[int]:
    return [int(entry["id"]) for entry in _log(request)]


def _skipped(request: HttpRequest) -> list[int]:
    return [int(pk) for pk in request.session.get(SESSION_SKIPPED, [])]


def _arrived_from(request: HttpRequest, upload_id: int) -> int | None:
    came_from = request.session.get(SESSION_ARRIVED_FROM, {}).get(str(upload_id))
    return int(came_from) if came_from is not None else None


def _remember_arrival(request: HttpRequest, *, shown: int | None, came_from: int) -> None:
    """Note that ``came_from``'s decision or skip handed out ``shown``: ← on ``shown`` goes back there, to where the
    reviewer was, not to what the queue's order puts before it (a picture skipped or passed over earlier)."""
    if shown is None or shown == came_from:
        return
    arrivals = {key: value for key, value in request.session.get(SESSION_ARRIVED_FROM, {}).items() if key != str(shown)}
    arrivals[str(shown)] = came_from
    request.session[SESSION_ARRIVED_FROM] = dict(list(arrivals.items())[-HISTORY_LENGTH:])


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


# How often to choose again when another reviewer claimed the chosen picture first (each loss removes one picture).
CLAIM_ATTEMPTS = 5


def _chosen_and_claimed(request: SignedInRequest, choose: Callable[[], int | None]) -> int | None:
    """The picture ``choose`` picks, claimed for this reviewer at once: two reviewers choosing at the same moment
    see the same head of the queue, and the one whose claim loses chooses again (the queue now passes over the
    picture the other holds). When every choice is held, the last one is shown, with its note."""
    chosen = None
    for _ in range(CLAIM_ATTEMPTS):
        picked = choose()
        if picked is None or picked == chosen:
            return picked
        chosen = picked
        if upload_review_claim(upload_id=picked, reviewer=request.user) is None:
            return picked
    return chosen


def _first_in_queue(request: SignedInRequest) -> int | None:
    first = review_queue_first(skipped=_skipped(request), reviewer_id=request.user.pk)
    return first.pk if first is not None else None


@staff_required
@require_GET
def review_start(request: SignedInRequest) -> HttpResponse:
    """The most uncertain unreviewed picture (claimed for this reviewer), or a page saying the queue is empty."""
    first = _chosen_and_claimed(request, lambda: _first_in_queue(request))
    if first is None:
        history = _history(request)
        return render(request, "phoneapp/review_empty.html", {"last_id": history[-1] if history else None})
    return redirect("review-item", upload_id=first)


@staff_required
@require_GET
def review_item(request: SignedInRequest, upload_id: int) -> HttpResponse:
    upload = review_upload_get(upload_id=upload_id)
    # Opening a picture claims it, so the queue hands other reviewers other pictures meanwhile.
    open_with = upload_review_claim(upload_id=upload.pk, reviewer=request.user)
    place = review_place(
        upload=upload,
        history=_history(request),
        skipped=_skipped(request),
        reviewer_id=request.user.pk,
        arrived_from=_arrived_from(request, upload.pk),
    )
    context = {
        "upload": upload,
        "place": place,
        "unsure": upload_verdict(upload=upload) == Verdict.UNSURE,
        # Once a reviewer has drawn the boxes, the model's guess is no longer what the editor shows.
        "unsure_place": upload.reviewed_boxes is None and upload_place_unsure(upload=upload),
        "can_undo": bool(_log(request)),
        "second_opinion": (
            upload.second_review == SecondReview.WAITING
            and bool(upload.reviewed_label)
            and upload.reviewed_by_id != request.user.pk
        ),
        # Each side of a dispute, and settled as ground truth only: a plain decision is refused on it.
        "dispute": dispute_words(upload) if upload.second_review == SecondReview.DISAGREED else "",
        "boxes_json": upload.reviewed_boxes if upload.reviewed_boxes is not None else upload.predicted_boxes,
        "review_state": upload_review_state(upload=upload),
        "open_with": open_with,
        "earlier": review_earlier_label(upload=upload),
        "can_mark_ground_truth": request.user.has_perm(GROUND_TRUTH_PERMISSION),
    }
    return render(request, "phoneapp/review.html", context)


@staff_required
@require_POST
def review_decide(request: SignedInRequest, upload_id: int) -> HttpResponse:
    """Save one decision (``phone``, ``not_phone`` or ``confirm``) for the picture and its duplicates, with the
    reviewer's ``boxes`` when posted and as ground truth when ``ground_truth`` is on; move on."""
    upload = review_upload_get(upload_id=upload_id)
    decision = request.POST.get("decision", "")
    if decision not in DECISIONS:
        return _refuse(request, upload.pk, "Unknown decision: use phone, not_phone or confirm.")
    as_ground_truth = bool(request.POST.get("ground_truth"))
    if as_ground_truth and not request.user.has_perm(GROUND_TRUTH_PERMISSION):
        # Ground truth decides which model version is promoted: the same permission as the admin's actions.
        return _refuse(request, upload.pk, GROUND_TRUTH_REFUSED, status=403)
    try:
        boxes = review_boxes_parse(raw=request.POST["boxes"]) if "boxes" in request.POST else None
        decision_made = upload_review_decide(
            upload=upload,
            decision=decision,
            reviewer=request.user,
            boxes=boxes,
            seen_state=request.POST.get("seen"),
            as_ground_truth=as_ground_truth,
        )
    except (ReviewNeedsChoice, BadBoxes, ReviewConflict, ReviewDisputed) as error:
        return _refuse(request, upload.pk, error.message, status=error.status_code)
    log = [entry for entry in _log(request) if int(entry["id"]) != upload.pk]
    log.append(
        {
            "id": upload.pk,
            "prior": [before.to_dict() for before in decision_made.prior],
            "prior_ground_truth": [before.to_dict() for before in decision_made.prior_ground_truth],
        }
    )
    request.session[SESSION_LOG] = log[-HISTORY_LENGTH:]
    decided = review_upload_get(upload_id=upload.pk)
    # The place before the decision: a review now waiting for a second reviewer must not jump the queue's order.
    next_id = _chosen_and_claimed(
        request, lambda: review_next_after(upload=upload, skipped=_skipped(request), reviewer_id=request.user.pk)
    )
    _remember_arrival(request, shown=next_id, came_from=upload.pk)
    next_url = reverse("review-item", args=[next_id]) if next_id else reverse("review")
    # Said on the next page either way: review.js opens it after the JSON answer, as the form's redirect does.
    copies = len(decision_made.prior)
    saved = _saved_message(decided, copies=copies, as_ground_truth=as_ground_truth)
    if not as_ground_truth:
        saved += _ground_truth_kept(
            decided, decision_made.label, may_change=request.user.has_perm(GROUND_TRUTH_PERMISSION)
        )
    messages.success(request, f"{saved} Undo last takes it back.")
    if _wants_json(request):
        return JsonResponse(
            {
                "id": decided.pk,
                "reviewed_label": decided.reviewed_label,
                "labelled": copies,
                "next_id": next_id,
                "next_url": next_url,
            }
        )
    return redirect(next_url)


@staff_required
@require_POST
def review_skip(request: SignedInRequest, upload_id: int) -> HttpResponse:
    """Leave a picture for later: it moves behind everything not skipped, for this reviewer's session."""
    upload = review_upload_get(upload_id=upload_id)
    skipped = [pk for pk in _skipped(request) if pk != upload.pk] + [upload.pk]
    request.session[SESSION_SKIPPED] = skipped[-HISTORY_LENGTH:]
    next_id = _chosen_and_claimed(
        request, lambda: review_next_after(upload=upload, skipped=skipped, reviewer_id=request.user.pk)
    )
    _remember_arrival(request, shown=next_id, came_from=upload.pk)
    next_url = reverse("review-item", args=[next_id]) if next_id and next_id != upload.pk else reverse("review")
    if _wants_json(request):
        return JsonResponse({"id": upload.pk, "next_id": next_id, "next_url": next_url})
    messages.info(request, f"Skipped {upload.original_name}: it comes back after the rest of the queue.")
    return redirect(next_url)


@staff_required
@require_POST
def review_undo(request: SignedInRequest) -> HttpResponse:
    """Take back this reviewer's last decision (every upload it labelled) and show that picture again."""
    log = _log(request)
    if not log:
        message = "Nothing to undo in this session."
        if _wants_json(request):
            return JsonResponse({"error": message}, status=400)
        messages.error(request, message)
        return redirect("review")
    entry = log.pop()
    request.session[SESSION_LOG] = log
    prior = [PriorReview.from_dict(item) for item in entry["prior"]]
    restored = uploads_review_restore(prior=prior, reviewer=request.user)
    prior_truth = [PriorGroundTruth.from_dict(item) for item in entry.get("prior_ground_truth", [])]
    if prior_truth:
        ground_truth_restore(prior=prior_truth, by=request.user)
    url = reverse("review-item", args=[int(entry["id"])])
    if not review_upload_exists(upload_id=int(entry["id"])):
        # Its owner deleted it since: its page would answer 404. Other owners' uploads of the picture were undone.
        url = reverse("review")
        if restored:
            messages.success(
                request, "Undone on the other uploads of this picture; the one you decided on was deleted since."
            )
        else:
            messages.warning(request, "Not undone: the picture was deleted since.")
    elif restored:
        messages.success(request, "Undone: the picture is back as it was before your decision.")
    else:  # another reviewer decided on it since (e.g. a second opinion): theirs is not taken back
        messages.warning(
            request, "Not undone: another reviewer has decided on this picture since; it is as they left it."
        )
    if _wants_json(request):
        return JsonResponse({"id": int(entry["id"]), "restored": restored, "url": url})
    return redirect(url)


def _ground_truth_kept(decided: Upload, label: str, *, may_change: bool) -> str:
    """A decision (``label``, this reviewer's: a second opinion is not the stored ``reviewed_label``) against a
    picture's ground truth leaves the ground truth as it was: said, since the reviewer believed they had relabelled
    the picture (ground truth scores every model version)."""
    truth = decided.ground_truth_label
    if not truth or truth == label:
        return ""
    how = "tick Ground truth (G) with your decision" if may_change else "ask staff who may change uploads"
    return f" Its ground truth stays {decided.get_ground_truth_label_display().lower()}: to change it, {how}."


# What a picture is, in a sentence ("x.jpg is a phone"): the labels' display names lower-cased said "is phone".
_IS_WORDS = {Label.PHONE: "a phone", Label.NOT_PHONE: "not a phone"}


def _saved_message(decided: Upload, *, copies: int, as_ground_truth: bool = False) -> str:
    """What a decision did, in the words of the state it left: a second opinion that disagreed leaves the first
    reviewer's label in place (it said "is phone" to someone who had just said "not a phone"); a decision made
    ground truth is settled (it was told to have staff settle it, by the staff member who just had)."""
    name = decided.original_name
    also = f" (and {copies - 1} more upload{pluralize(copies - 1)} of the same picture)" if copies > 1 else ""
    label = _IS_WORDS[Label(decided.reviewed_label)]
    if as_ground_truth and decided.ground_truth_label:
        truth = _IS_WORDS[Label(decided.ground_truth_label)]
        return f"Saved as ground truth: {name} is {truth}{also}; it scores every model version and never trains."
    if decided.second_review == SecondReview.DISAGREED:
        first = decided.reviewed_by.get_username() if decided.reviewed_by else "the first reviewer"
        return (
            f"Saved: you disagree with {first}, who said {name} is {label}{also}; it trains nothing until staff "
            "settle it (admin, ground truth)."
        )
    if decided.second_review == SecondReview.WAITING:
        return f"Saved: {name} is {label}{also}; it waits for a second reviewer before it trains."
    return f"Saved: {name} is {label}{also}."


def _refuse(request: HttpRequest, upload_id: int, message: str, *, status: int = 400) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    messages.error(request, message)
    return redirect("review-item", upload_id=upload_id)

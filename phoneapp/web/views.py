"""Page views: parse the request, call one service or selector, render.

Pictures are served through :func:`upload_image` and :func:`upload_thumbnail`, which check ownership, so a
picture's URL is useless to anyone but its owner (and staff reviewers).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from phoneapp.models import UploadStatus
from phoneapp.picture_files import display_response, heatmap_response, thumbnail_response
from phoneapp.selectors.uploads import (
    UPLOAD_EXPORT_COLUMNS,
    UploadFilters,
    upload_get,
    upload_get_for_viewer,
    upload_list,
    uploads_export_rows,
    uploads_get_many,
    uploads_recent,
)
from phoneapp.services.classification import upload_retry_failed
from phoneapp.services.errors import InvalidUpload, OwnerGone
from phoneapp.services.upload_deletion import upload_delete
from phoneapp.services.uploads import uploads_create
from phoneapp.signed_in import SignedInRequest
from phoneapp.throttling import UploadRateThrottle


@login_required
@require_http_methods(["GET", "POST"])
def upload_page(request: SignedInRequest) -> HttpResponse:
    """The upload form; without JavaScript it posts here and lands back on this page with the new uploads."""
    if request.method == "POST":
        throttle = UploadRateThrottle()
        try:
            allowed = throttle.allow_request(request, None)
        except InvalidUpload as error:  # more pictures than the whole rate limit
            return _upload_refused(request, error.message, status=error.status_code)
        if not allowed:
            return _too_many_requests(request, retry_after=throttle.retry_after_seconds())
        files = request.FILES.getlist("image")
        if not files:  # the service's words name the API's field; the page's say what to do on it
            throttle.refund()
            return _upload_refused(request, "No picture was sent: choose one or more pictures, then press Upload.")
        try:
            uploads = uploads_create(owner=request.user, files=files)
        except InvalidUpload as error:
            throttle.refund()
            return _upload_refused(request, error.message, status=error.status_code)
        except OwnerGone as error:  # deleted from another tab while the pictures were on their way
            logout(request)
            messages.error(request, error.message)
            return redirect("login")
        ids = ",".join(str(upload.pk) for upload in uploads)
        return redirect(f"{reverse('upload')}?batch={ids}")
    batch_ids = _parse_ids(request.GET.get("batch", ""))
    if batch_ids:
        recent = uploads_get_many(owner=request.user, upload_ids=batch_ids)
    else:
        # A reload (or coming back later) shows the latest uploads again, their verdicts still updating.
        recent = uploads_recent(owner=request.user, limit=RECENT_ON_UPLOAD_PAGE)
    return render(request, "phoneapp/upload.html", {"recent": recent})


RECENT_ON_UPLOAD_PAGE = 12


def _upload_refused(request: SignedInRequest, message: str, *, status: int = 400) -> HttpResponse:
    """The upload page again, saying why nothing was uploaded, with the latest uploads still listed (without
    JavaScript the refused form lands here: an empty list read as if earlier pictures were gone)."""
    messages.error(request, message)
    recent = uploads_recent(owner=request.user, limit=RECENT_ON_UPLOAD_PAGE)
    return render(request, "phoneapp/upload.html", {"recent": recent}, status=status)


@login_required
@require_GET
def history_page(request: SignedInRequest) -> HttpResponse:
    filters = UploadFilters.from_query(request.GET)
    paginator = Paginator(upload_list(owner=request.user, filters=filters), settings.HISTORY_PAGE_SIZE)
    asked_page = request.GET.get("page", "")
    page = paginator.get_page(asked_page)
    ignored = UploadFilters.notes_on(request.GET)
    if asked_page and asked_page != str(page.number):
        ignored.append(f"page “{asked_page}” does not exist: this is page {page.number} of {paginator.num_pages}")
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    context = {
        "page": page,
        "filters": filters,
        "query_without_page": query_without_page.urlencode(),
        "ignored": ignored,
    }
    return render(request, "phoneapp/history.html", context)


# Excel on Windows reads a CSV without this mark in the machine's code page: "Café.jpg" came out garbled.
UTF8_BYTE_ORDER_MARK = "\ufeff"


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def history_csv(request: SignedInRequest) -> StreamingHttpResponse:
    """The history's filtered rows (every page of them) as CSV, streamed so a long history costs no memory."""
    rows = uploads_export_rows(owner=request.user, filters=UploadFilters.from_query(request.GET))
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield UTF8_BYTE_ORDER_MARK + writer.writerow(UPLOAD_EXPORT_COLUMNS)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="phone-check-uploads-{stamp}.csv"'
    return response


@login_required
@require_GET
def upload_detail_page(request: SignedInRequest, upload_id: int) -> HttpResponse:
    upload = upload_get(owner=request.user, upload_id=upload_id)
    return render(request, "phoneapp/detail.html", {"upload": upload})


@login_required
@require_POST
def upload_retry(request: SignedInRequest, upload_id: int) -> HttpResponse:
    """The owner's "Try again" on a failed upload: classified again as if just uploaded; anything else unchanged."""
    upload = upload_get(owner=request.user, upload_id=upload_id)
    if upload_retry_failed(upload=upload):
        upload.refresh_from_db(fields=["status"])  # without a broker it was classified in this request already
        again = "was classified again" if upload.status == UploadStatus.DONE else "is being classified again"
        messages.success(request, f"{upload.original_name} {again}.")
    else:
        messages.info(request, f"{upload.original_name} has not failed: nothing to try again.")
    return redirect("upload-detail", upload_id=upload.pk)


@login_required
@require_http_methods(["GET", "POST"])
def upload_delete_page(request: SignedInRequest, upload_id: int) -> HttpResponse:
    """``GET``: ask to confirm (works without JavaScript); ``POST``: delete the upload and its files for good."""
    upload = upload_get(owner=request.user, upload_id=upload_id)
    back = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = ""
    if request.method == "POST":
        upload_delete(upload=upload)
        messages.success(request, f"Deleted {upload.original_name}: the picture and everything made from it are gone.")
        return redirect(back or reverse("history"))
    return render(request, "phoneapp/delete.html", {"upload": upload, "next": back})


@login_required
@require_GET
def upload_image(request: SignedInRequest, upload_id: int) -> FileResponse:
    return display_response(upload_get_for_viewer(viewer=request.user, upload_id=upload_id))


@login_required
@require_GET
def upload_thumbnail(request: SignedInRequest, upload_id: int) -> FileResponse:
    return thumbnail_response(upload_get_for_viewer(viewer=request.user, upload_id=upload_id))


@login_required
@require_GET
def upload_heatmap(request: SignedInRequest, upload_id: int) -> FileResponse:
    """The "where is the phone" overlay (transparent PNG), drawn on the first request when the verdict's evidence
    was stored; same permission as the picture it explains."""
    upload = upload_get_for_viewer(viewer=request.user, upload_id=upload_id)
    return heatmap_response(upload)


def _too_many_requests(request: HttpRequest, *, retry_after: int) -> HttpResponse:
    """The web form's 429: the upload page again, saying how long to wait (same budget as the API's)."""
    messages.error(request, f"Too many uploads in a short time; try again in {retry_after} seconds.")
    response = render(request, "phoneapp/upload.html", {"recent": []}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _parse_ids(raw: str) -> list[int]:
    """Upload ids from an editable URL (``?batch=3,4``); anything else is ignored. ASCII digits only ("²" passes
    ``isdigit`` and fails ``int``), and at most 18 of them (a database id, not a number the database refuses)."""
    parts = (part.strip() for part in raw.split(","))
    return [int(part) for part in parts if part.isascii() and part.isdigit() and len(part) <= 18][
        : settings.UPLOAD_MAX_FILES
    ]

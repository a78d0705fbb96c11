"""Page views: parse the request, call one service or selector, render.

Pictures are served through :func:`upload_image` and :func:`upload_thumbnail`, which check ownership, so a
picture's URL is useless to anyone but its owner (and staff reviewers).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Model
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from phoneapp.api.throttling import UploadRateThrottle
from phoneapp.models import Upload
from phoneapp.selectors import UploadFilters, upload_get, upload_list, uploads_get_many
from phoneapp.services.errors import InvalidUpload
from phoneapp.services.upload_deletion import upload_delete
from phoneapp.services.uploads import uploads_create


@login_required
@require_http_methods(["GET", "POST"])
def upload_page(request: HttpRequest) -> HttpResponse:
    """The upload form; without JavaScript it posts here and lands back on this page with the new uploads."""
    if request.method == "POST":
        throttle = UploadRateThrottle()
        if not throttle.allow_request(request, None):
            return _too_many_requests(request, retry_after=throttle.retry_after_seconds())
        try:
            uploads = uploads_create(owner=request.user, files=request.FILES.getlist("image"))
        except InvalidUpload as error:
            messages.error(request, error.message)
            return render(request, "phoneapp/upload.html", {"recent": []}, status=error.status_code)
        ids = ",".join(str(upload.pk) for upload in uploads)
        return redirect(f"{reverse('upload')}?batch={ids}")
    batch_ids = _parse_ids(request.GET.get("batch", ""))
    recent = uploads_get_many(owner=request.user, upload_ids=batch_ids)
    return render(request, "phoneapp/upload.html", {"recent": recent})


@login_required
@require_GET
def history_page(request: HttpRequest) -> HttpResponse:
    filters = UploadFilters.from_query(request.GET)
    paginator = Paginator(upload_list(owner=request.user, filters=filters), settings.HISTORY_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    return render(
        request,
        "phoneapp/history.html",
        {"page": page, "filters": filters, "query_without_page": query_without_page.urlencode()},
    )


@login_required
@require_GET
def upload_detail_page(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = upload_get(owner=request.user, upload_id=upload_id)
    return render(request, "phoneapp/detail.html", {"upload": upload})


@login_required
@require_http_methods(["GET", "POST"])
def upload_delete_page(request: HttpRequest, upload_id: int) -> HttpResponse:
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
def upload_image(request: HttpRequest, upload_id: int) -> FileResponse:
    upload = _viewable_upload(request, upload_id)
    return _picture_response(upload.image, upload.content_type)


@login_required
@require_GET
def upload_thumbnail(request: HttpRequest, upload_id: int) -> FileResponse:
    upload = _viewable_upload(request, upload_id)
    return _picture_response(upload.thumbnail, "image/jpeg")


@login_required
@require_GET
def upload_heatmap(request: HttpRequest, upload_id: int) -> FileResponse:
    """The "where is the phone" overlay (transparent PNG); same permission as the picture it explains."""
    upload = _viewable_upload(request, upload_id)
    return _picture_response(upload.heatmap, "image/png")


def _viewable_upload(request: HttpRequest, upload_id: int) -> Upload:
    """Owners see their pictures; staff see every picture (they review them in the admin)."""
    if request.user.is_staff:
        try:
            return Upload.objects.get(pk=upload_id)
        except Upload.DoesNotExist as error:
            raise Http404("No such upload.") from error
    return upload_get(owner=request.user, upload_id=upload_id)


def _picture_response(field: Model, content_type: str) -> FileResponse:
    if not field.name:
        raise Http404("No picture.")
    try:
        handle = field.open("rb")
    except FileNotFoundError as error:
        raise Http404("The picture file is missing.") from error
    response = FileResponse(handle, content_type=content_type)
    # The bytes are the user's own; never let a browser sniff them into HTML or script.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _too_many_requests(request: HttpRequest, *, retry_after: int) -> HttpResponse:
    """The web form's 429: the upload page again, saying how long to wait (same budget as the API's)."""
    messages.error(request, f"Too many uploads in a short time; try again in {retry_after} seconds.")
    response = render(request, "phoneapp/upload.html", {"recent": []}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _parse_ids(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",") if part.strip().isdigit()][: settings.UPLOAD_MAX_FILES]

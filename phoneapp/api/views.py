"""API endpoints: parse the request, call one service or selector, shape the response."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from phoneapp.api.authentication import AuthenticatedRequest
from phoneapp.api.idempotency import idempotency_key
from phoneapp.api.list_query import upload_list_query_problems
from phoneapp.api.serializers import (
    ErrorSerializer,
    TokenRequestSerializer,
    TokenSerializer,
    UploadFormSerializer,
    UploadPageSerializer,
    UploadRefusalSerializer,
    UploadRequestSerializer,
    UploadSerializer,
)
from phoneapp.models import Verdict
from phoneapp.picture_files import heatmap_response, thumbnail_response, upload_image_response
from phoneapp.selectors.uploads import UploadFilters, upload_get, upload_list
from phoneapp.services.api_tokens import api_token_regenerate
from phoneapp.services.errors import InvalidCredentials, InvalidUpload
from phoneapp.services.upload_deletion import upload_delete
from phoneapp.services.upload_requests import (
    IdempotencyKeyReused,
    IdempotentUploadsDeleted,
    UploadsAnswer,
    upload_request_known,
    uploads_create_once,
)
from phoneapp.services.uploads import uploads_create
from phoneapp.throttling import UploadRateThrottle

BATCH_RULE = (
    "Send one or more files, each as an `image` part (at most `UPLOAD_MAX_FILES`, 20 by default). **All or "
    "nothing:** every file is checked before anything is stored, so one bad file refuses the whole request "
    "and stores none of them: 400 (413 when every file refused is too large), the reason naming each file, and "
    "`files` listing them by their place among the parts (from 0); send files one per request to have each "
    "judged on its own. The answer (201) lists one result per file, in the order sent: with the full verdict when "
    "it is already known (no broker configured, or the same picture judged before by the active model), else "
    "`status: pending` -- poll its `url` until `status` is `done` or `failed`. Each picture counts against the "
    "upload rate limit (429 with `Retry-After` past it; more pictures than the whole limit: 400)."
)

# Errors every endpoint for a signed-in caller can answer, and those of the ones that change something.
SIGNED_IN_ERRORS = {401: OpenApiResponse(ErrorSerializer, description="no or bad credentials")}
CHANGE_ERRORS = {
    403: OpenApiResponse(ErrorSerializer, description="signed in with a browser session but no CSRF token")
}
NOT_YOURS = OpenApiResponse(ErrorSerializer, description="no such upload of yours")
NOT_MULTIPART = OpenApiResponse(ErrorSerializer, description="the body is not multipart/form-data")

# The list's query parameters, as UploadFilters.from_query reads them.
UPLOAD_LIST_PARAMETERS = [
    OpenApiParameter("page", int, description="page number, from 1 (past the last page: 404)"),
    OpenApiParameter(
        "label",
        str,
        enum=["phone", "not_phone"],
        description="final label: the ground truth, else a settled review, else the model's",
    ),
    OpenApiParameter("status", str, enum=["pending", "processing", "done", "failed"]),
    OpenApiParameter("reviewed", str, enum=["yes", "no"]),
    OpenApiParameter("verdict", str, enum=Verdict.values, description="what the model said"),
    OpenApiParameter("q", str, description="part of the file name, any case"),
    OpenApiParameter("from", OpenApiTypes.DATE, description="uploaded on or after this day (YYYY-MM-DD)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="uploaded on or before this day (YYYY-MM-DD)"),
]


class UploadListCreateApi(APIView):
    """``GET``: the caller's uploads, newest first, paginated. ``POST``: upload one or many pictures."""

    # Pictures come only as multipart parts: a urlencoded body cannot carry a file, and answered 400 "the 'image'
    # part came without a file name" where the schema promises 415 for a body that is not multipart.
    parser_classes = [MultiPartParser]
    # What the browsable API shows (the schema has its own words and request body, in extend_schema below); DRF
    # made the title from the class name ("Upload List Create Api").
    name = "Your uploads"
    description = "Your uploads, newest first (GET). Send pictures with the form below or as 'image' parts (POST)."
    serializer_class = UploadFormSerializer

    upload_throttle: UploadRateThrottle | None = None

    def get_throttles(self) -> list[BaseThrottle]:
        # Only sending pictures costs work; reading the list is not limited.
        if self.request.method != "POST" or self._retry_of_a_stored_request():
            return []
        self.upload_throttle = UploadRateThrottle()
        return [self.upload_throttle]

    def _retry_of_a_stored_request(self) -> bool:
        """A retry whose Idempotency-Key is stored stores nothing, so the rate limit does not apply: charged first,
        a retry of a request that spent the whole budget was refused (429) though its answer was ready."""
        key = idempotency_key(self.request)  # a malformed key is a 400 here, before anything is charged
        user = self.request.user  # signed in: permissions are checked before throttles
        return key is not None and isinstance(user, User) and upload_request_known(owner=user, key=key)

    @extend_schema(
        operation_id="uploads_list",
        summary="List your uploads",
        description=(
            "Newest first, paginated (`?page=`). `from` and `to` are days in the site's time zone (`TIME_ZONE`). "
            "A parameter the list does not take, one given twice, a page that is not a whole number from 1 or a "
            "filter value it cannot read is refused (400, each named), not ignored: the whole list answered to a "
            "mistyped filter would be acted on as if it were the filtered one."
        ),
        parameters=UPLOAD_LIST_PARAMETERS,
        responses={
            200: UploadPageSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="a parameter it does not take, given twice, or a value it cannot read (each named)",
            ),
            **SIGNED_IN_ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="no such page"),
        },
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        problems = upload_list_query_problems(request.query_params)
        if problems:
            return Response(
                {"error": f"Filters not understood, so nothing was listed: {'; '.join(problems)}."}, status=400
            )
        paginator = PageNumberPagination()
        uploads = upload_list(owner=request.user, filters=UploadFilters.from_query(request.query_params))
        page = paginator.paginate_queryset(uploads, request, view=self)
        data = UploadSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        summary="Upload pictures",
        description=BATCH_RULE,
        request={"multipart/form-data": UploadRequestSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description=(
                    "Optional; 1 to 255 printable ASCII characters, a new one (a UUID) for each new request. Sent "
                    "again with the same pictures within 24 hours (a retry after a lost answer), it answers 200 "
                    "with the uploads the first request made, as they are now, and stores nothing "
                    "(`Idempotent-Replayed: true`); with other pictures, 422; after those uploads were deleted, 409."
                ),
            ),
            OpenApiParameter(
                "Idempotent-Replayed",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                description="`true`: the answer of an earlier request with the same Idempotency-Key",
            ),
        ],
        responses={
            200: OpenApiResponse(
                UploadSerializer(many=True),
                description="a retry (same Idempotency-Key and pictures): the first request's uploads; nothing stored",
            ),
            201: UploadSerializer(many=True),
            400: OpenApiResponse(
                UploadRefusalSerializer,
                description="a file was refused, or the Idempotency-Key is malformed; nothing was stored",
            ),
            **SIGNED_IN_ERRORS,
            **CHANGE_ERRORS,
            413: OpenApiResponse(
                UploadRefusalSerializer,
                description="a file (every one refused), or the request, is too large; nothing was stored",
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="the uploads first made with this Idempotency-Key were deleted since; nothing stored",
            ),
            415: NOT_MULTIPART,
            422: OpenApiResponse(
                ErrorSerializer, description="the Idempotency-Key was sent before with other pictures; nothing stored"
            ),
            429: OpenApiResponse(ErrorSerializer, description="too many pictures in a short time (see Retry-After)"),
            503: OpenApiResponse(
                ErrorSerializer, description="storage or the database is unavailable; nothing was stored (Retry-After)"
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        # As they are now: the service reads them back only when it classified them itself (no broker).
        try:
            files = request.FILES.getlist("image")
            if not files and "image" in request.POST:
                # A part without a file name is an ordinary form field to Django, so a picture sent that way
                # (requests with files={"image": (None, data)}) was answered "no picture was sent".
                raise InvalidUpload(
                    "The 'image' part came without a file name, so it was read as text, not as a file: send each "
                    "picture as a file part with a name (curl: -F image=@photo.jpg)."
                )
            key = idempotency_key(request)
            if key is None:
                answer = UploadsAnswer(uploads_create(owner=request.user, files=files), replayed=False)
            else:
                answer = uploads_create_once(owner=request.user, files=files, key=key)
        except (InvalidUpload, IdempotencyKeyReused, IdempotentUploadsDeleted, ParseError):
            self._refund()  # a refused request spends none of the budget
            raise
        data = UploadSerializer(answer.uploads, many=True, context={"request": request}).data
        if not answer.replayed:
            return Response(data, status=status.HTTP_201_CREATED)
        self._refund()  # a retry stores nothing
        return Response(data, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})

    def _refund(self) -> None:
        if self.upload_throttle is not None:
            self.upload_throttle.refund()


class UploadDetailApi(APIView):
    """``GET``: one of the caller's uploads; ``DELETE``: delete it with its files (204). Someone else's: 404."""

    name = "One of your uploads"
    description = "One of your uploads (GET); DELETE removes it with its files."

    @extend_schema(
        summary="One of your uploads",
        description="The upload's verdict as the list gives it; poll `url` until `status` is `done` or `failed`.",
        responses={200: UploadSerializer, **SIGNED_IN_ERRORS, 404: NOT_YOURS},
    )
    def get(self, request: AuthenticatedRequest, upload_id: int) -> Response:
        upload = upload_get(owner=request.user, upload_id=upload_id)
        return Response(UploadSerializer(upload, context={"request": request}).data)

    @extend_schema(
        summary="Delete one of your uploads with its files",
        description="The row, the picture, its thumbnail and heat map go (files another upload of the same picture "
        "still shows stay). Someone else's upload: 404, and nothing changes.",
        responses={204: None, **SIGNED_IN_ERRORS, **CHANGE_ERRORS, 404: NOT_YOURS},
    )
    def delete(self, request: AuthenticatedRequest, upload_id: int) -> Response:
        upload_delete(upload=upload_get(owner=request.user, upload_id=upload_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnyContentNegotiation(DefaultContentNegotiation):
    """Picture endpoints answer bytes, whatever ``Accept`` says (an ``<img>`` asks for ``image/*``); errors are
    JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))  # DRF passes the view's renderer list, never empty
        return first, first.media_type


def picture_schema(summary: str, *, what: str, missing: str) -> Callable[[Callable], Callable]:
    """The schema of a picture endpoint's ``get``: bytes for the owner, JSON errors otherwise. ``what`` says what
    the bytes are, ``missing`` when there are none (its 404 beside "no such upload of yours")."""
    return extend_schema(
        summary=summary,
        responses={
            (200, "image/*"): OpenApiTypes.BINARY,
            **SIGNED_IN_ERRORS,
            404: OpenApiResponse(ErrorSerializer, description=f"no such upload of yours, or {missing}"),
            503: OpenApiResponse(ErrorSerializer, description="storage cannot be read right now (Retry-After)"),
        },
        description=f"{what} Only the upload's owner can fetch it; anyone else gets 404.",
    )


class _UploadPictureApi(APIView):
    """What every picture endpoint shares: bytes answered whatever ``Accept`` asks for (each says how it finds
    them in its own ``get``)."""

    content_negotiation_class = AnyContentNegotiation


class UploadImageApi(_UploadPictureApi):
    """The picture as uploaded (HEIC is stored as JPEG)."""

    @picture_schema(
        "The picture as uploaded",
        what="The stored file (without its location, camera and text metadata), named as it was sent.",
        missing="its file is missing from storage",
    )
    def get(self, request: AuthenticatedRequest, upload_id: int) -> FileResponse:
        return upload_image_response(upload_get(owner=request.user, upload_id=upload_id))


class UploadThumbnailApi(_UploadPictureApi):
    """A small JPEG of the picture; the picture itself until the worker has drawn it."""

    @picture_schema(
        "A small JPEG of the picture",
        what="At most 320 px on its longer side, named `<name>-thumbnail.jpg`; the picture itself until drawn.",
        missing="its picture is missing from storage",
    )
    def get(self, request: AuthenticatedRequest, upload_id: int) -> FileResponse:
        return thumbnail_response(upload_get(owner=request.user, upload_id=upload_id))


class UploadHeatmapApi(_UploadPictureApi):
    """Where the phone is, as a transparent PNG; drawn on the first request when the verdict's evidence was
    stored."""

    @picture_schema(
        "Where the phone is, as a transparent PNG",
        what="Smaller than the picture (at most 160 px on its longer side, the picture's proportions): scale it "
        "to the picture's width and height to lay it over. Named `<name>-heatmap.png`.",
        missing="no heat map to draw (no verdict yet, or its model version's files are gone)",
    )
    def get(self, request: AuthenticatedRequest, upload_id: int) -> FileResponse:
        upload = upload_get(owner=request.user, upload_id=upload_id)
        return heatmap_response(upload)


TOKEN_RULE = (
    "Send your username and password; get a new API token. **It rotates:** only a hash of each key is stored, so "
    "a key made earlier cannot be handed back; every call makes a new key and the previous one (from this "
    "endpoint or the 'Your API token' page) stops working at once. Get one per deployment and keep it. Wrong "
    "credentials: 400; past the login limit (per account and per address) 429 with `Retry-After`."
)


class TokenObtainApi(APIView):
    """``POST`` username and password, get a new API token (the user's previous one stops working)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Parsers: the API's default (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES), JSON, form data or multipart.
    name = "Get an API token"
    description = "POST your user name and password to get a new API token; your previous one stops working."
    serializer_class = TokenRequestSerializer  # the browsable API's form

    @extend_schema(
        summary="Get a new API token",
        description=TOKEN_RULE,
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="wrong or missing credentials, or a body it cannot parse"
            ),
            415: OpenApiResponse(ErrorSerializer, description="the body is not JSON or form data"),
            429: OpenApiResponse(ErrorSerializer, description="too many failed logins for this account or address"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        form = TokenRequestSerializer(data=request.data)
        if not form.is_valid():
            return Response({"error": "Send 'username' and 'password'."}, status=status.HTTP_400_BAD_REQUEST)
        user = authenticate(request._request, **form.validated_data)
        if user is None or not user.is_active:
            raise InvalidCredentials("Unable to log in with the username and password given.")
        # A secret: no cache may keep it (the request is not signed in, so the site-wide no-store does not apply).
        return Response({"token": api_token_regenerate(user=user)}, headers={"Cache-Control": "no-store"})

"""API endpoints: parse the request, call one service or selector, shape the response."""

from __future__ import annotations

from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from phoneapp.api.serializers import UploadCreatedSerializer, UploadSerializer
from phoneapp.api.throttling import UploadRateThrottle
from phoneapp.selectors import UploadFilters, upload_get, upload_list
from phoneapp.services.upload_deletion import upload_delete
from phoneapp.services.uploads import uploads_create


class UploadListCreateApi(APIView):
    """``GET``: the caller's uploads, newest first, paginated. ``POST``: upload one or many pictures."""

    parser_classes = [MultiPartParser, FormParser]

    def get_throttles(self) -> list[UploadRateThrottle]:
        # Only sending pictures costs work; reading the list is not limited.
        return [UploadRateThrottle()] if self.request.method == "POST" else []

    def get(self, request: Request) -> Response:
        paginator = PageNumberPagination()
        uploads = upload_list(owner=request.user, filters=UploadFilters.from_query(request.query_params))
        page = paginator.paginate_queryset(uploads, request, view=self)
        return paginator.get_paginated_response(UploadSerializer(page, many=True).data)

    def post(self, request: Request) -> Response:
        uploads = uploads_create(owner=request.user, files=request.FILES.getlist("image"))
        data = UploadCreatedSerializer(uploads, many=True, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class UploadDetailApi(APIView):
    """``GET``: one of the caller's uploads; ``DELETE``: delete it with its files (204). Someone else's: 404."""

    def get(self, request: Request, upload_id: int) -> Response:
        return Response(UploadSerializer(upload_get(owner=request.user, upload_id=upload_id)).data)

    def delete(self, request: Request, upload_id: int) -> Response:
        upload_delete(upload=upload_get(owner=request.user, upload_id=upload_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

from django.urls import path

from phoneapp.api.doc_pages import RedocPage, SchemaApi, SwaggerPage
from phoneapp.api.views import (
    TokenObtainApi,
    UploadDetailApi,
    UploadHeatmapApi,
    UploadImageApi,
    UploadListCreateApi,
    UploadThumbnailApi,
)
from phoneapp.login_throttle import login_throttled

urlpatterns = [
    path("uploads/", UploadListCreateApi.as_view(), name="api-uploads"),
    path("uploads/<int:upload_id>/", UploadDetailApi.as_view(), name="api-upload-detail"),
    path("uploads/<int:upload_id>/image", UploadImageApi.as_view(), name="api-upload-image"),
    path("uploads/<int:upload_id>/thumbnail", UploadThumbnailApi.as_view(), name="api-upload-thumbnail"),
    path("uploads/<int:upload_id>/heatmap", UploadHeatmapApi.as_view(), name="api-upload-heatmap"),
    # It takes a password: past the login limit it answers 429 with Retry-After before any password is hashed.
    path("token/", login_throttled(TokenObtainApi.as_view()), name="api-token"),
    path("schema/", SchemaApi.as_view(), name="api-schema"),
    path("docs/", SwaggerPage.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", RedocPage.as_view(url_name="api-schema"), name="api-redoc"),
]

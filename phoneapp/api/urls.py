from django.urls import path

from phoneapp.api.views import UploadDetailApi, UploadListCreateApi

urlpatterns = [
    path("uploads/", UploadListCreateApi.as_view(), name="api-uploads"),
    path("uploads/<int:upload_id>/", UploadDetailApi.as_view(), name="api-upload-detail"),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from phoneapp.web import views
from phoneapp.web.health import healthz

urlpatterns = [
    path("", views.upload_page, name="upload"),
    path("history/", views.history_page, name="history"),
    path("uploads/<int:upload_id>/", views.upload_detail_page, name="upload-detail"),
    path("uploads/<int:upload_id>/image", views.upload_image, name="upload-image"),
    path("uploads/<int:upload_id>/thumbnail", views.upload_thumbnail, name="upload-thumbnail"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("phoneapp.api.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]

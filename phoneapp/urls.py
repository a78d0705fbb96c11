from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from django.views.generic import RedirectView

from phoneapp.login_throttle import login_throttled
from phoneapp.web import account, dashboard, review, views
from phoneapp.web.health import healthz

urlpatterns = [
    path("", views.upload_page, name="upload"),
    path("history/", views.history_page, name="history"),
    path("history/export.csv", views.history_csv, name="history-csv"),
    path("account/", account.account_page, name="account"),
    path("account/password/", account.AccountPasswordChangeView.as_view(), name="account-password"),
    path("account/delete-pictures/", account.account_delete_pictures, name="account-delete-pictures"),
    path("account/delete/", account.account_delete_page, name="account-delete"),
    path("account/api-token/", account.api_token_page, name="api-token-page"),
    path("uploads/<int:upload_id>/", views.upload_detail_page, name="upload-detail"),
    path("uploads/<int:upload_id>/delete", views.upload_delete_page, name="upload-delete"),
    path("uploads/<int:upload_id>/retry", views.upload_retry, name="upload-retry"),
    path("uploads/<int:upload_id>/image", views.upload_image, name="upload-image"),
    path("uploads/<int:upload_id>/thumbnail", views.upload_thumbnail, name="upload-thumbnail"),
    path("uploads/<int:upload_id>/heatmap", views.upload_heatmap, name="upload-heatmap"),
    path("review/", review.review_start, name="review"),
    path("review/<int:upload_id>/", review.review_item, name="review-item"),
    path("review/<int:upload_id>/decide", review.review_decide, name="review-decide"),
    path("review/<int:upload_id>/skip", review.review_skip, name="review-skip"),
    path("review/undo", review.review_undo, name="review-undo"),
    path("dashboard/", dashboard.dashboard_page, name="dashboard"),
    path("accounts/login/", login_throttled(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", account.SignOutView.as_view(), name="logout"),
    path("api/", include("phoneapp.api.urls")),
    # Before admin.site.urls, so the admin's own login goes through the same throttle ("admin:login" still reverses).
    path("admin/login/", login_throttled(admin.site.login)),
    # The admin's own password form checks the old password without the login throttle: a borrowed staff session
    # could guess at it without limit. Staff change it where everyone does (counted like a sign-in).
    path(
        "admin/password_change/",
        login_required(RedirectView.as_view(pattern_name="account-password", permanent=False)),
    ),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]

# Requests Django refuses before any view (e.g. too many files) get a readable reason, not a bare 400 page.
handler400 = "phoneapp.web.errors.bad_request"
# Outages raised outside a view (e.g. while saving the session) answer 503 like the others; the rest stay 500s.
handler500 = "phoneapp.web.outages.server_error"

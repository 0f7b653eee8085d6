from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from dsr import auth_views

if settings.DSR_REQUIRE_2FA:
    # The admin asks for the second factor too.
    from django_otp.admin import OTPAdminSite

    admin.site.__class__ = OTPAdminSite

# A database that is away answers 503 with Retry-After (a page, or a problem response in the API).
handler500 = "dsr.views.server_error"

auth_patterns = ([path("otp/", auth_views.otp_verify, name="otp")], "dsr-auth")

urlpatterns = [
    path("", include("dsr.urls")),
    path("accounts/login/", auth_views.ThrottledLoginView.as_view(), name="login"),
    path("accounts/password_reset/", auth_views.ThrottledPasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include(auth_patterns)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dashboard/", include("dsr.dashboard_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/login/", auth_views.admin_login),
    path("admin/", admin.site.urls),
    # ESP tracking webhooks (delivered, bounced, complained): anymail's views behind a guard that
    # refuses them without ANYMAIL_WEBHOOK_SECRET and answers 400 to bodies it cannot read.
    path("anymail/", include("dsr.webhooks")),
    path("api/v1/", include("dsr.api.urls")),
    path("api/v1/", include("dsr.fulfilment.api_urls")),
    path("dashboard/fulfilment/", include("dsr.fulfilment.dashboard_urls")),
    path("", include("dsr.fulfilment.urls_requester")),
    path("", include("dsr.fulfilment.urls_systems")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from ?script, not inline (the CSP).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
]

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("dsr.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # ESP tracking webhooks (delivered, bounced, complained), authenticated by anymail with the
    # ESP's webhook secret / signing key from the ANYMAIL_* settings.
    path("anymail/", include("anymail.urls")),
    path("api/v1/", include("dsr.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

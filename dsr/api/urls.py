from typing import Any

from django.urls import path

from dsr.api import views

app_name = "api"

requests = views.StaffRequestViewSet
# DRF's @action marks each method with its url_path, url_name, mapping and kwargs.
extra_actions: list[Any] = list(requests.get_extra_actions())

urlpatterns = [
    path("requests/", views.PublicRequestCreate.as_view(), name="public-request-create"),
    path("staff/suppressions/", views.SuppressionList.as_view(), name="suppressions"),
    path("staff/suppressions.csv", views.SuppressionCsv.as_view(), name="suppressions-csv"),
    path("staff/suppressions/check/", views.SuppressionCheck.as_view(), name="suppressions-check"),
    path("staff/requests/", requests.as_view({"get": "list", "post": "create"}), name="staff-requests"),
    path("staff/requests/<str:reference>/", requests.as_view({"get": "retrieve"}), name="staff-request-detail"),
    # One route per @action of the viewset, i.e. per entry of dsr.actions the API serves.
    *(
        path(
            f"staff/requests/<str:reference>/{extra.url_path}/",
            requests.as_view(dict(extra.mapping), detail=True, basename="staff-request", **extra.kwargs),
            name=f"staff-request-{extra.url_name}",
        )
        for extra in extra_actions
    ),
]

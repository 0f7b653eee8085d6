from django.urls import path

from dsr.fulfilment import api

app_name = "fulfilment-api"

urlpatterns = [
    path("staff/systems/", api.SystemsList.as_view(), name="systems"),
    path("staff/requests/<str:reference>/fulfilment/", api.FulfilmentStatus.as_view(), name="status"),
    path("staff/requests/<str:reference>/fulfilment/start/", api.FulfilmentStart.as_view(), name="start"),
    path("staff/requests/<str:reference>/fulfilment/approve/", api.ErasureApprove.as_view(), name="approve"),
    path(
        "staff/requests/<str:reference>/fulfilment/corrections/decide/",
        api.CorrectionsDecide.as_view(),
        name="corrections-decide",
    ),
    path(
        "staff/requests/<str:reference>/fulfilment/corrections/systems/<str:system>/retell/",
        api.CorrectionSystemRetell.as_view(),
        name="corrections-retell",
    ),
    path("staff/requests/<str:reference>/fulfilment/package/", api.PackageBuildNow.as_view(), name="package-build"),
    path(
        "staff/requests/<str:reference>/fulfilment/systems/<str:system>/retry/",
        api.SystemRetry.as_view(),
        name="retry",
    ),
    path(
        "staff/requests/<str:reference>/fulfilment/systems/<str:system>/manual/",
        api.SystemSwitchToManual.as_view(),
        name="manual",
    ),
    path("staff/requests/<str:reference>/package/", api.PackageDownload.as_view(), name="package"),
    path("staff/requests/<str:reference>/package/reissue/", api.PackageReissue.as_view(), name="package-reissue"),
]

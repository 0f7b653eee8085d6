from django.urls import path

from dsr.fulfilment import dashboard_views as views

app_name = "fulfilment-dashboard"

urlpatterns = [
    path("systems/", views.systems_page, name="systems"),
    path("systems/check/", views.systems_check, name="systems-check"),
    path("requests/<str:reference>/start/", views.start, name="start"),
    path("requests/<str:reference>/package/", views.package_download, name="package"),
    path("requests/<str:reference>/package/build/", views.build_now, name="build-now"),
    path("requests/<str:reference>/package/reissue/", views.reissue, name="reissue"),
    path("requests/<str:reference>/answer/", views.send_answer, name="answer"),
    path("requests/<str:reference>/erasure/approve/", views.approve, name="approve"),
    path("requests/<str:reference>/erasure/answer/", views.erasure_answer, name="erasure-answer"),
    path("requests/<str:reference>/corrections/decide/", views.corrections_decide, name="corrections-decide"),
    path("requests/<str:reference>/corrections/answer/", views.correction_answer, name="correction-answer"),
    path(
        "requests/<str:reference>/corrections/systems/<str:system>/retell/",
        views.correction_retell,
        name="correction-retell",
    ),
    path("requests/<str:reference>/systems/<str:system>/retry/", views.retry, name="retry"),
    path("requests/<str:reference>/systems/<str:system>/manual/", views.switch_to_manual, name="manual"),
]

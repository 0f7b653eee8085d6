"""The requester's side of fulfilment: their access package, downloaded from the status page
(under its path, so the same private token finds it and everything there answers no-store)."""

from django.urls import path

from dsr.fulfilment import requester_views

app_name = "fulfilment-requester"

urlpatterns = [
    path("r/<str:token>/package/code/", requester_views.package_code, name="package-code"),
    path("r/<str:token>/package/confirm/", requester_views.package_confirm, name="package-confirm"),
    path("r/<str:token>/package/download/", requester_views.package_download, name="package-download"),
    path("r/<str:token>/statement/", requester_views.statement_submit, name="statement"),
]

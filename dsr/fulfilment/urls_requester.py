"""The requester's side of fulfilment: their access package, downloaded from the status page."""

from django.urls import URLPattern

app_name = "fulfilment-requester"

urlpatterns: list[URLPattern] = []

"""Where the company's systems answer: processors' signed callbacks, manual owners' task links,
and (run mode only) the demo processor."""

from django.urls import URLPattern

app_name = "fulfilment-systems"

urlpatterns: list[URLPattern] = []

"""Where the company's systems answer: processors' signed callbacks, manual owners' task links,
and (run mode only) the demo processor."""

from django.urls import path

from dsr.fulfilment import demo_processor, systems_views

app_name = "fulfilment-systems"

urlpatterns = [
    path("fulfilment/callback/<int:system_run_id>/", systems_views.callback, name="callback"),
    path("fulfilment/task/<str:token>/", systems_views.owner_task, name="task"),
    path("demo/processor/", demo_processor.processor, name="demo-processor"),
]

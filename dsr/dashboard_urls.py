from django.urls import path

from dsr import dashboard

app_name = "dashboard"

urlpatterns = [
    path("", dashboard.queue, name="queue"),
    path("queue.csv", dashboard.queue_csv, name="queue-csv"),
    path("bulk/", dashboard.queue_bulk, name="bulk"),
    path("requests/<str:reference>/", dashboard.request_page, name="request"),
    path("requests/<str:reference>/<str:action>/", dashboard.request_action, name="action"),
    path("reports/", dashboard.report_page, name="reports"),
    path("reports/metrics.csv", dashboard.report_csv, name="reports-csv"),
    path("tokens/", dashboard.tokens_page, name="tokens"),
    path("tokens/<str:token_id>/revoke/", dashboard.token_revoke, name="token-revoke"),
]

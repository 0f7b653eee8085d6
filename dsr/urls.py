from django.urls import path

from dsr import views

app_name = "dsr"

urlpatterns = [
    path("", views.request_form, name="request-form"),
    path("submitted/", views.request_submitted, name="request-submitted"),
    path("r/<str:token>/", views.request_status, name="request-status"),
    path("v/<str:token>/", views.email_confirm, name="email-confirm"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("staff/", views.staff_request_list, name="staff-request-list"),
    path("staff/requests/<str:reference>/", views.staff_request_detail, name="staff-request-detail"),
    path(
        "staff/requests/<str:reference>/documents/<int:document_id>/",
        views.staff_document_download,
        name="staff-document",
    ),
]

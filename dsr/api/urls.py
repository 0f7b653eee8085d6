from django.urls import path

from dsr.api import views

app_name = "api"

urlpatterns = [
    path("requests/", views.PublicRequestCreate.as_view(), name="public-request-create"),
    path("staff/requests/", views.StaffRequestListCreate.as_view(), name="staff-requests"),
    path("staff/requests/<str:reference>/", views.StaffRequestDetail.as_view(), name="staff-request-detail"),
    path("staff/requests/<str:reference>/extend/", views.ExtendAction.as_view(), name="staff-request-extend"),
    path("staff/requests/<str:reference>/deny/", views.DenyAction.as_view(), name="staff-request-deny"),
    path("staff/requests/<str:reference>/verify/", views.VerifyAction.as_view(), name="staff-request-verify"),
    path("staff/requests/<str:reference>/approve/", views.ApproveAction.as_view(), name="staff-request-approve"),
    path("staff/requests/<str:reference>/complete/", views.CompleteAction.as_view(), name="staff-request-complete"),
    path("staff/requests/<str:reference>/cancel/", views.CancelAction.as_view(), name="staff-request-cancel"),
    path("staff/requests/<str:reference>/reopen/", views.ReopenAction.as_view(), name="staff-request-reopen"),
    path("staff/requests/<str:reference>/ask/", views.AskAction.as_view(), name="staff-request-ask"),
    path("staff/requests/<str:reference>/message/", views.MessageAction.as_view(), name="staff-request-message"),
    path("staff/requests/<str:reference>/assign/", views.AssignAction.as_view(), name="staff-request-assign"),
]

from rest_framework.permissions import BasePermission


class IsPrivacyStaff(BasePermission):
    """Staff who work requests: the privacy-officer permission (or a superuser)."""

    message = "Only privacy staff can do this."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.has_perm("dsr.work_requests"))

from django.conf import settings
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from dsr.models import ApiToken

SECOND_FACTOR_NEEDED = (
    "A second factor is needed: this session signed in with a password only. Enter the code from your "
    "authenticator app at /accounts/otp/, or call the API with a token."
)


def _signed_in_by_token(request) -> bool:
    return isinstance(request.auth, ApiToken)


class IsPrivacyStaff(BasePermission):
    """Staff who work requests: the privacy-officer permission (or a superuser). A session counts
    only once it is verified with the second factor, as on the dashboard (dsr.dashboard.staff_required);
    an API token is its own credential (it is issued by a command, or on the dashboard after two-factor
    sign-in)."""

    message = "Only privacy staff can do this."
    permission = "dsr.work_requests"

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if settings.DSR_REQUIRE_2FA and not _signed_in_by_token(request):
            # django-otp's middleware gives the session's user is_verified(); any other way in has none.
            is_verified = getattr(user, "is_verified", None)
            if not (is_verified and is_verified()):
                raise PermissionDenied(SECOND_FACTOR_NEEDED, code="second_factor_required")
        return user.has_perm(self.permission)


class IsPrivacyStaffReader(IsPrivacyStaff):
    """Staff who may read requests (reviewers too), with the same second-factor rule."""

    message = "Only privacy staff can read this."
    permission = "dsr.view_datasubjectrequest"


class ActionPermission(BasePermission):
    """An action's own permission, from its entry in dsr.actions (checked after IsPrivacyStaff)."""

    message = IsPrivacyStaff.message

    def __init__(self, permission: str):
        self.permission = permission

    def has_permission(self, request, view):
        return request.user.has_perm(self.permission)

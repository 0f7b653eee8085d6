"""Read-only admin: status and events change only through the services (the API and pages).
Users, groups and second-factor devices: nobody grants rights they do not hold (dsr.roles)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsr.models import AuditEvent, DataSubjectRequest, DemoCustomer, Organisation, OutboundEmail
from dsr.roles import rights_of, user_may_manage

# What makes a user powerful: only a superuser changes these, on anyone (themself included).
RIGHTS_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(ReadOnlyAdmin):
    list_display = ["reference", "request_type", "regime", "status", "email", "received_at", "respond_by"]
    list_filter = ["status", "request_type", "regime"]
    search_fields = ["reference", "email", "full_name"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["request", "seq", "event_type", "actor_label", "from_status", "to_status", "created_at"]
    list_select_related = ["request"]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdmin):
    list_display = ["template", "to", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "template"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    """Where requests from an organisation's users are forwarded [policy]: one row per email domain."""

    list_display = ["name", "email_domain", "admin_contact_email"]
    search_fields = ["name", "email_domain"]


@admin.register(DemoCustomer)
class DemoCustomerAdmin(admin.ModelAdmin):
    list_display = ["email", "full_name", "postal_code", "customer_number"]
    search_fields = ["email", "full_name"]


admin.site.unregister(get_user_model())
admin.site.unregister(Group)
admin.site.unregister(TOTPDevice)


@admin.register(get_user_model())
class StaffUserAdmin(UserAdmin):
    """A non-superuser (the Administrator role) changes only users who hold no right it lacks —
    itself included — and never their rights; a superuser manages everything. The password page
    asks the same per-user change permission, so no one takes over a stronger account by resetting
    its password or email."""

    def get_readonly_fields(self, request, obj=None):
        fields = ["last_login", "date_joined"]
        if not request.user.is_superuser:
            fields += RIGHTS_FIELDS
        return fields

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (obj is None or user_may_manage(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or user_may_manage(request.user, obj))

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            # Bulk delete checks no single user: it could remove a superuser.
            actions.pop("delete_selected", None)
        return actions

    # Behind the read-only fields, a second guard: whatever a form held, a non-superuser's save
    # grants no staff or superuser status and no right the saver did not hold before (refusing
    # rolls the whole change back, the admin saves in one transaction).
    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            before = type(obj).objects.filter(pk=obj.pk).values("is_staff", "is_superuser").first() if obj.pk else None
            before = before or {"is_staff": False, "is_superuser": False}
            if (obj.is_staff, obj.is_superuser) != (before["is_staff"], before["is_superuser"]):
                raise PermissionDenied
            request.dsr_rights_held = rights_of(request.user)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        held = getattr(request, "dsr_rights_held", None)
        if held is not None and not rights_of(form.instance) <= held:
            raise PermissionDenied


@admin.register(Group)
class RoleGroupAdmin(GroupAdmin):
    """Groups are the roles: only a superuser creates, changes or deletes them."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(TOTPDevice)
class SecondFactorDeviceAdmin(TOTPDeviceAdmin):
    """A device added to someone else's account would let its maker pass their second factor: only
    a superuser adds, changes or deletes one."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

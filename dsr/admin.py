"""Read-only admin: status and events change only through the services (the API and pages)."""

from django.contrib import admin

from dsr.models import AuditEvent, DataSubjectRequest, DemoCustomer, Organisation, OutboundEmail


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

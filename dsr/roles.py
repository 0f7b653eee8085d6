"""Staff roles as Django groups. Privacy officer: everything on requests. Reviewer: read and
comment. Administrator: configuration and users in the admin site."""

from django.contrib.auth.models import Group, Permission

OFFICER = "Privacy officer"
REVIEWER = "Reviewer"
ADMINISTRATOR = "Administrator"

ROLE_PERMISSIONS = {
    OFFICER: [("dsr", "work_requests"), ("dsr", "comment_requests"), ("dsr", "view_datasubjectrequest")],
    REVIEWER: [("dsr", "comment_requests"), ("dsr", "view_datasubjectrequest")],
    ADMINISTRATOR: [
        ("dsr", "add_organisation"), ("dsr", "change_organisation"), ("dsr", "delete_organisation"), ("dsr", "view_organisation"),
        ("dsr", "add_democustomer"), ("dsr", "change_democustomer"), ("dsr", "view_democustomer"),
        ("auth", "add_user"), ("auth", "change_user"), ("auth", "view_user"), ("auth", "view_group"),
    ],
}
ROLES = {"officer": OFFICER, "reviewer": REVIEWER, "administrator": ADMINISTRATOR}


def roles_sync() -> dict[str, Group]:
    """Create the role groups with their permissions (idempotent)."""
    groups = {}
    for name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in perms]
        group.permissions.set(wanted)
        groups[name] = group
    return groups

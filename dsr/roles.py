"""Staff roles as Django groups. Privacy officer: everything on requests. Reviewer: read and
comment. Administrator: configuration and users in the admin site."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

OFFICER = "Privacy officer"
REVIEWER = "Reviewer"
ADMINISTRATOR = "Administrator"

ROLE_PERMISSIONS = {
    OFFICER: [("dsr", "work_requests"), ("dsr", "comment_requests"), ("dsr", "view_datasubjectrequest")],
    REVIEWER: [("dsr", "comment_requests"), ("dsr", "view_datasubjectrequest")],
    ADMINISTRATOR: [
        ("dsr", "add_organisation"),
        ("dsr", "change_organisation"),
        ("dsr", "delete_organisation"),
        ("dsr", "view_organisation"),
        ("dsr", "add_democustomer"),
        ("dsr", "change_democustomer"),
        ("dsr", "view_democustomer"),
        ("auth", "add_user"),
        ("auth", "change_user"),
        ("auth", "view_user"),
        ("auth", "view_group"),
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


def rights_of(user) -> set[str]:
    """The permissions `user` holds directly and through groups, as "app.codename" — read from the
    database whether or not the account is active (a deactivated officer still holds the role that
    reactivating it would restore)."""
    perms = Permission.objects.filter(Q(user=user) | Q(group__user=user)).values_list(
        "content_type__app_label", "codename"
    )
    return {f"{app}.{code}" for app, code in perms}


def user_may_manage(actor, target) -> bool:
    """No staff user grants rights they do not hold: `actor` may change `target` (its details,
    password, whether it is active) only if `target` holds no right `actor` lacks. Only a superuser
    manages superusers — and roles, groups and permissions, which no one else may change at all."""
    if actor.is_superuser:
        return True
    if target.is_superuser or (target.is_staff and not actor.is_staff):
        return False
    return target.pk == actor.pk or rights_of(target) <= rights_of(actor)

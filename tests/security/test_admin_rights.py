"""The admin grants no rights its user does not hold: for each role and each kind of target user,
what may change and what may not, checked in the database after POSTing the admin's own forms."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from dsr.roles import ADMINISTRATOR, OFFICER, REVIEWER, ROLES, rights_of, roles_sync, user_may_manage
from tests.factories import officer_create

pytestmark = pytest.mark.django_db

User = get_user_model()
ACTORS = ("administrator", "officer", "reviewer", "superuser")
TARGETS = ("self", "weaker", "stronger", "superuser")
NEW_PASSWORD = "a brand new passphrase 42"

# (actor, target) -> may the actor change the target's details and password at all?
MAY_CHANGE = {
    ("administrator", "self"): True,
    ("administrator", "weaker"): True,
    ("administrator", "stronger"): False,
    ("administrator", "superuser"): False,
    **{("officer", t): False for t in TARGETS},  # no user permissions at all
    **{("reviewer", t): False for t in TARGETS},
    **{("superuser", t): True for t in TARGETS},
}


def _actor(kind: str):
    if kind == "superuser":
        return User.objects.create_superuser("root", "root@company.example", "correct horse battery")
    return officer_create(username=f"the-{kind}", email=f"{kind}@company.example", role=kind)


def _target(kind: str, actor):
    if kind == "self":
        return actor
    if kind == "superuser":
        return User.objects.create_superuser("root2", "root2@company.example", "correct horse battery")
    if kind == "weaker":
        return User.objects.create_user("plain", "plain@company.example", "correct horse battery", is_staff=True)
    # Stronger than every role on its own: all three roles, not a superuser.
    user = officer_create(username="strong", email="strong@company.example", role="officer")
    user.groups.add(*Group.objects.filter(name__in=[ADMINISTRATOR, REVIEWER]))
    return user


def _state(user) -> dict:
    user = User.objects.get(pk=user.pk)
    return {
        "email": user.email,
        "is_superuser": user.is_superuser,
        "is_staff": user.is_staff,
        "is_active": user.is_active,
        "groups": set(user.groups.values_list("name", flat=True)),
        "perms": set(user.user_permissions.values_list("codename", flat=True)),
        "password": user.password,
    }


def _change_form(target, officer_group, perm) -> dict:
    return {
        "username": target.username,
        "first_name": "Changed",
        "last_name": "",
        "email": "changed@company.example",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "groups": [str(officer_group.pk)],
        "user_permissions": [str(perm.pk)],
        "_save": "Save",
    }


@pytest.mark.parametrize("actor_kind", ACTORS)
@pytest.mark.parametrize("target_kind", TARGETS)
def test_change_form_grants_no_rights_the_actor_lacks(actor_kind, target_kind):
    roles_sync()
    actor = _actor(actor_kind)
    target = _target(target_kind, actor)
    officer_group = Group.objects.get(name=OFFICER)
    perm = Permission.objects.get(codename="delete_user")
    client = Client()
    client.force_login(actor)
    before = _state(target)
    may_change = MAY_CHANGE[(actor_kind, target_kind)]
    # The rule itself, apart from the admin's own permissions: within what the actor holds.
    assert user_may_manage(actor, target) == (actor_kind == "superuser" or target_kind in ("self", "weaker"))

    res = client.post(f"/admin/auth/user/{target.pk}/change/", _change_form(target, officer_group, perm))
    after = _state(target)
    if not may_change:
        assert res.status_code == 403
        assert after == before
    elif actor_kind == "superuser":
        assert res.status_code == 302, res.content.decode()[:2000]
        assert after["email"] == "changed@company.example" and after["is_superuser"] and after["is_staff"]
        assert after["groups"] == {OFFICER} and after["perms"] == {"delete_user"}
    else:
        # An administrator edits the details of itself and of weaker users, never their rights.
        assert res.status_code == 302, res.content.decode()[:2000]
        assert after["email"] == "changed@company.example"
        assert {k: after[k] for k in ("is_superuser", "is_staff", "groups", "perms")} == {
            k: before[k] for k in ("is_superuser", "is_staff", "groups", "perms")
        }

    # The password page: the same per-user rule (taking over a stronger account is granting rights).
    pw = client.post(
        f"/admin/auth/user/{target.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    changed = User.objects.get(pk=target.pk).check_password(NEW_PASSWORD)
    if may_change:
        assert pw.status_code == 302 and changed
    else:
        assert pw.status_code == 403 and not changed


@pytest.mark.parametrize("actor_kind", ACTORS)
@pytest.mark.parametrize("target_kind", TARGETS)
def test_change_page_shows_rights_as_read_only_to_non_superusers(actor_kind, target_kind):
    roles_sync()
    actor = _actor(actor_kind)
    target = _target(target_kind, actor)
    client = Client()
    client.force_login(actor)
    res = client.get(f"/admin/auth/user/{target.pk}/change/")
    if actor_kind in ("officer", "reviewer"):
        assert res.status_code == 403  # no user permissions at all
        return
    assert res.status_code == 200  # administrators view every user; may they change it?
    html = res.content.decode()
    editable = {name for name in ("is_superuser", "is_staff", "groups", "email") if f'name="{name}"' in html}
    if actor_kind == "superuser":
        assert editable == {"is_superuser", "is_staff", "groups", "email"}
    elif MAY_CHANGE[(actor_kind, target_kind)]:
        assert editable == {"email"}
    else:
        assert editable == set()


def test_an_administrator_cannot_make_itself_superuser_or_officer():
    """The reported case, end to end."""
    roles_sync()
    ada = _actor("administrator")
    client = Client()
    client.force_login(ada)
    res = client.post(
        f"/admin/auth/user/{ada.pk}/change/",
        _change_form(ada, Group.objects.get(name=OFFICER), Permission.objects.get(codename="work_requests")),
    )
    assert res.status_code == 302
    ada = User.objects.get(pk=ada.pk)
    assert not ada.is_superuser and set(ada.groups.values_list("name", flat=True)) == {ADMINISTRATOR}
    assert not ada.has_perm("dsr.work_requests")


def test_a_deactivated_officer_is_still_stronger_than_an_administrator():
    roles_sync()
    ada = _actor("administrator")
    olivia = officer_create(username="olivia", email="olivia@company.example")
    olivia.is_active = False
    olivia.save(update_fields=["is_active"])
    assert "dsr.work_requests" in rights_of(olivia)
    client = Client()
    client.force_login(ada)
    data = _change_form(olivia, Group.objects.get(name=OFFICER), Permission.objects.get(codename="work_requests"))
    assert client.post(f"/admin/auth/user/{olivia.pk}/change/", data).status_code == 403
    assert not User.objects.get(pk=olivia.pk).is_active


def test_an_administrator_creates_users_without_rights():
    roles_sync()
    ada = _actor("administrator")
    client = Client()
    client.force_login(ada)
    res = client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "is_superuser": "on",
            "is_staff": "on",
            "groups": [str(Group.objects.get(name=OFFICER).pk)],
            "_save": "Save",
        },
    )
    assert res.status_code == 302, res.content.decode()[:2000]
    newbie = User.objects.get(username="newbie")
    assert not newbie.is_superuser and not newbie.is_staff and not newbie.groups.exists()


def test_second_guard_refuses_a_form_that_would_carry_rights(monkeypatch):
    """Even if the rights fields were editable (a later change to the admin), a non-superuser's save
    that grants a right it lacks is refused and rolled back."""
    from dsr.admin import StaffUserAdmin

    roles_sync()
    monkeypatch.setattr(
        StaffUserAdmin, "get_readonly_fields", lambda self, request, obj=None: ["last_login", "date_joined"]
    )
    ada = _actor("administrator")
    client = Client()
    client.force_login(ada)
    data = _change_form(ada, Group.objects.get(name=OFFICER), Permission.objects.get(codename="work_requests"))
    before = _state(ada)
    data.pop("is_superuser"), data.pop("is_staff")
    data["is_staff"] = "on"  # unchanged: the administrator is staff already
    assert client.post(f"/admin/auth/user/{ada.pk}/change/", data).status_code == 403
    assert _state(ada) == before
    data["groups"], data["user_permissions"], data["is_superuser"] = [], [], "on"
    assert client.post(f"/admin/auth/user/{ada.pk}/change/", data).status_code == 403
    assert _state(ada) == before


@pytest.mark.parametrize("actor_kind", ["administrator", "officer", "reviewer"])
def test_only_a_superuser_edits_groups(actor_kind):
    roles_sync()
    actor = _actor(actor_kind)
    # Even with every group permission granted directly, only a superuser changes the roles.
    actor.user_permissions.add(*Permission.objects.filter(content_type__app_label="auth", codename__endswith="_group"))
    group = Group.objects.get(name=ROLES[actor_kind])
    work = Permission.objects.get(codename="work_requests")
    client = Client()
    client.force_login(actor)
    before = set(group.permissions.all())
    res = client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": group.name, "permissions": [str(p.pk) for p in [*before, work]]},
    )
    assert res.status_code == 403 and set(group.permissions.all()) == before
    assert client.post("/admin/auth/group/add/", {"name": "Mine", "permissions": [str(work.pk)]}).status_code == 403
    assert client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 403
    assert not Group.objects.filter(name="Mine").exists() and Group.objects.filter(pk=group.pk).exists()

    root = _actor("superuser")
    client.force_login(root)
    res = client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": group.name, "permissions": [str(p.pk) for p in [*before, work]]},
    )
    assert res.status_code == 302 and work in group.permissions.all()


def test_administrator_with_delete_permission_cannot_delete_stronger_users():
    roles_sync()
    ada = _actor("administrator")
    ada.user_permissions.add(Permission.objects.get(codename="delete_user"))
    root = _actor("superuser")
    olivia = officer_create(username="olivia", email="olivia@company.example")
    plain = User.objects.create_user("plain", "plain@company.example", "x" * 20)
    client = Client()
    client.force_login(ada)
    for user in (root, olivia):
        assert client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"}).status_code == 403
    res = client.post(
        "/admin/auth/user/", {"action": "delete_selected", "_selected_action": [root.pk, olivia.pk], "post": "yes"}
    )
    assert User.objects.filter(pk__in=[root.pk, olivia.pk]).count() == 2, res.status_code
    assert client.post(f"/admin/auth/user/{plain.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=plain.pk).exists()


def test_only_a_superuser_adds_second_factor_devices():
    from django_otp.plugins.otp_totp.models import TOTPDevice

    roles_sync()
    ada = _actor("administrator")
    ada.user_permissions.add(*Permission.objects.filter(content_type__app_label="otp_totp"))
    olivia = officer_create(username="olivia", email="olivia@company.example")
    client = Client()
    client.force_login(ada)
    res = client.post(
        "/admin/otp_totp/totpdevice/add/",
        {
            "user": olivia.pk,
            "name": "mine",
            "confirmed": "on",
            "key": "0" * 40,
            "step": 30,
            "t0": 0,
            "digits": 6,
            "tolerance": 1,
            "drift": 0,
            "throttling_failure_count": 0,
        },
    )
    assert res.status_code == 403 and not TOTPDevice.objects.filter(user=olivia).exists()

"""Staff API tokens: stored as digests, expiring, named, last use recorded, revocable — by command
and on the dashboard, where each user reaches only their own."""

import hashlib
import io
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from dsr.errors import InvalidInput
from dsr.models import ApiToken
from dsr.services.tokens import LAST_USE_RESOLUTION, MAX_DAYS, MAX_TOKENS_PER_USER, api_token_create
from tests.factories import officer_create, staff_token_key, totp_device_create
from tests.support.otp import totp_code

pytestmark = pytest.mark.django_db

STAFF = "/api/v1/staff/requests/"
TOKENS = "/dashboard/tokens/"


def _api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _database_dump() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def _assert_401_problem(res):
    assert res.status_code == 401, res.content
    assert res["Content-Type"].startswith("application/problem+json")
    assert res.json()["status"] == 401 and "expired or revoked" in res.json()["detail"]
    assert res["WWW-Authenticate"] == "Token"


# --- At rest ---------------------------------------------------------------------------------------


def test_the_key_printed_by_create_officer_is_nowhere_in_the_database(db):
    out = io.StringIO()
    call_command("dsr_create_officer", "maria", email="maria@company.example", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    assert _api(key).get(STAFF).status_code == 200
    assert key not in _database_dump()


def test_keys_are_stored_as_digests_with_a_short_id(officer):
    token, key = api_token_create(user=officer, name="ci")
    assert key.startswith("dsr_") and len(key) >= 68
    assert token.digest == hashlib.sha512(key.encode()).hexdigest()
    assert token.token_key == key[:15] and key[15:] not in _database_dump()
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in {str(v) for v in row.values()}


# --- Expiry, revocation, last use ------------------------------------------------------------------


def test_default_expiry_comes_from_the_setting_and_a_lifetime_can_be_chosen(officer, settings):
    settings.DSR_API_TOKEN_DAYS = 7
    before = timezone.now()
    default, _ = api_token_create(user=officer, name="default")
    chosen, _ = api_token_create(user=officer, name="chosen", days=30)
    after = timezone.now()
    assert before + timedelta(days=7) <= default.expiry <= after + timedelta(days=7)
    assert before + timedelta(days=30) <= chosen.expiry <= after + timedelta(days=30)


def test_an_expired_token_gets_a_401_problem(officer):
    token, key = api_token_create(user=officer, name="ci")
    assert _api(key).get(STAFF).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    _assert_401_problem(_api(key).get(STAFF))


def test_a_revoked_token_gets_a_401_problem_and_the_others_keep_working(officer):
    token, key = api_token_create(user=officer, name="ci")
    _, other = api_token_create(user=officer, name="laptop")
    call_command("dsr_api_token", "revoke", "olivia", token.token_key, stdout=io.StringIO())
    _assert_401_problem(_api(key).get(STAFF))
    assert _api(other).get(STAFF).status_code == 200


@pytest.mark.parametrize("header", ["Token nonsense", "Token dsr_" + "0" * 64, "Token \xe9\xe9\xe9", "Token"])
def test_wrong_keys_and_headers_get_a_401_problem(officer, header):
    api_token_create(user=officer, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    res = client.get(STAFF)
    assert res.status_code == 401 and res["Content-Type"].startswith("application/problem+json")


def test_a_token_of_a_deactivated_user_is_refused(officer):
    _, key = api_token_create(user=officer, name="ci")
    officer.is_active = False
    officer.save(update_fields=["is_active"])
    _assert_401_problem(_api(key).get(STAFF))


def _token_writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "dsr_apitoken" in q["sql"]]


def test_last_use_is_recorded_but_not_written_on_every_call(officer):
    token, key = api_token_create(user=officer, name="ci")
    assert token.last_used_at is None
    client = _api(key)
    with CaptureQueriesContext(connection) as first:
        assert client.get(STAFF).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None and len(_token_writes(first.captured_queries)) == 1
    with CaptureQueriesContext(connection) as again:
        assert client.get(STAFF).status_code == 200
    assert _token_writes(again.captured_queries) == []
    # Once the last recorded use is older than the resolution, the next call writes it again.
    earlier = token.last_used_at - LAST_USE_RESOLUTION - timedelta(seconds=1)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=earlier)
    with CaptureQueriesContext(connection) as later:
        assert client.get(STAFF).status_code == 200
    token.refresh_from_db()
    assert len(_token_writes(later.captured_queries)) == 1 and token.last_used_at > earlier


# --- Names and lifetimes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "two\nlines", "tab\there", "bell\x07", "rtl\u202eoverride"])
def test_bad_names_are_refused(officer, name):
    with pytest.raises(InvalidInput) as exc:
        api_token_create(user=officer, name=name)
    assert exc.value.field == "name"
    assert not ApiToken.objects.filter(user=officer).exclude(name="dsr_create_officer").exists()


def test_a_name_of_64_characters_is_taken_trimmed(officer):
    token, _ = api_token_create(user=officer, name="  " + "n" * 64 + " ")
    assert token.name == "n" * 64


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1, "ten", "1.5"])
def test_bad_lifetimes_are_refused(officer, days):
    with pytest.raises(InvalidInput) as exc:
        api_token_create(user=officer, name="ci", days=days)
    assert exc.value.field == "days"


def test_a_user_holds_a_limited_number_of_live_tokens(officer):
    ApiToken.objects.filter(user=officer).delete()
    for i in range(MAX_TOKENS_PER_USER):
        api_token_create(user=officer, name=f"t{i}")
    with pytest.raises(InvalidInput, match="revoke one first"):
        api_token_create(user=officer, name="one more")
    assert ApiToken.objects.filter(user=officer).count() == MAX_TOKENS_PER_USER


# --- The command -----------------------------------------------------------------------------------


def _command(*args):
    out = io.StringIO()
    call_command("dsr_api_token", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_command_creates_lists_and_revokes(officer):
    out = _command("create", "olivia", "--name", "nightly export", "--days", "30")
    key = out[-1]
    assert _api(key).get(STAFF).status_code == 200
    listing = "\n".join(_command("list", "olivia"))
    token = ApiToken.objects.get(user=officer, name="nightly export")
    assert token.token_key in listing and "nightly export" in listing and key not in listing
    assert re.search(rf"{token.token_key}\tnightly export\t[^\t]+\t[^\t]+\t[^\t]+\tlive", listing)
    assert _command("revoke", "olivia", token.token_key)[-1].startswith(f"Revoked token {token.token_key}")
    _assert_401_problem(_api(key).get(STAFF))
    assert (
        _command("revoke", "olivia", "--all")[-1] == "Revoked 1 token(s) of olivia."
    )  # the one dsr_create_officer made
    assert _command("list", "olivia") == ["olivia holds no API tokens."]


@pytest.mark.parametrize(
    "args,code,message",
    [
        (("create", "nobody", "--name", "x"), 1, "There is no user 'nobody'."),
        (("list", "nobody"), 1, "There is no user 'nobody'."),
        (("revoke", "nobody", "dsr_abc"), 1, "There is no user 'nobody'."),
        (("revoke", "olivia", "dsr_abc"), 1, "olivia holds no token 'dsr_abc'"),
        (("create", "olivia", "--name", "x", "--days", "0"), 2, "1 to 365 days"),
        (("create", "olivia", "--name", "x", "--days", "soon"), 2, "whole number of days"),
        (("create", "olivia", "--name", "   "), 2, "Give the token a name"),
        (("create", "olivia", "--name", "y" * 65), 2, "at most 64 characters"),
    ],
)
def test_command_bad_input_has_a_clear_message_and_exit_code(officer, args, code, message):
    before = set(ApiToken.objects.values_list("digest", flat=True))
    with pytest.raises(CommandError) as exc:
        call_command("dsr_api_token", *args, stdout=io.StringIO())
    assert exc.value.returncode == code and message in str(exc.value)
    assert set(ApiToken.objects.values_list("digest", flat=True)) == before


def test_command_exit_code_from_the_command_line(officer, capsys, monkeypatch):
    from django.db import connections

    from dsr.management.commands.dsr_api_token import Command

    # run_from_argv closes the connections when it ends: keep the test's own open.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    with pytest.raises(SystemExit) as exc:
        Command().run_from_argv(["manage.py", "dsr_api_token", "revoke", "olivia", "dsr_abc"])
    assert exc.value.code == 1 and "holds no token" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        Command().run_from_argv(["manage.py", "dsr_api_token", "create", "olivia", "--name", "x", "--days", "999"])
    assert exc.value.code == 2


def test_command_cannot_revoke_another_users_token(officer):
    other = officer_create(username="omar", email="omar@company.example")
    token, key = api_token_create(user=other, name="omar's")
    with pytest.raises(CommandError):
        call_command("dsr_api_token", "revoke", "olivia", token.token_key, stdout=io.StringIO())
    assert _api(key).get(STAFF).status_code == 200


def test_demo_load_prints_a_usable_token_each_run_replacing_the_last(db):
    def demo_key():
        out = io.StringIO()
        call_command("dsr_demo_load", stdout=out)
        last = out.getvalue().strip().splitlines()[-1]
        assert last.startswith("Demo API token: ")
        return last.removeprefix("Demo API token: ")

    first = demo_key()
    assert _api(first).get(STAFF).status_code == 200
    second = demo_key()
    assert _api(second).get(STAFF).status_code == 200
    _assert_401_problem(_api(first).get(STAFF))


# --- Keys from before (rest_framework.authtoken) ---------------------------------------------------


def test_plain_keys_from_before_are_carried_over_hashed_and_keep_working(officer):
    from importlib import import_module

    from django.apps import apps
    from django.db.migrations.recorder import MigrationRecorder

    migration = import_module("dsr.migrations.0012_api_tokens")
    old_key = "4769c87041207194f691f0ae9ecadd7a6b9f9b7e"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp, user_id integer)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [old_key, timezone.now(), officer.pk])
    MigrationRecorder(connection).record_applied("authtoken", "0001_initial")
    migration.authtoken_keys_hash(apps, SimpleNamespace(connection=connection))
    assert "authtoken_token" not in connection.introspection.table_names()
    assert not MigrationRecorder(connection).migration_qs.filter(app="authtoken").exists()
    carried = ApiToken.objects.get(user=officer, name=migration.CARRIED_OVER_NAME)
    assert carried.expiry > timezone.now() and old_key not in _database_dump()
    assert _api(old_key).get(STAFF).status_code == 200


# --- The dashboard page ----------------------------------------------------------------------------


def _signed_in(user, **client_kwargs) -> Client:
    client = Client(**client_kwargs)
    client.force_login(user)
    return client


def test_dashboard_lists_only_your_own_tokens(officer):
    other = officer_create(username="omar", email="omar@company.example")
    mine, _ = api_token_create(user=officer, name="my laptop")
    theirs, _ = api_token_create(user=other, name="omar's server")
    html = _signed_in(officer).get(TOKENS).content.decode()
    assert mine.token_key in html and "my laptop" in html
    assert theirs.token_key not in html and "server" not in html
    assert "never" in html  # last use


def test_dashboard_creates_a_token_and_shows_the_key_once(officer):
    client = _signed_in(officer)
    res = client.post(TOKENS, {"name": "reporting script", "days": "30"})
    assert res.status_code == 200 and "no-store" in res["Cache-Control"]
    key = re.search(r'id="new-token-key">([^<]+)<', res.content.decode()).group(1)
    assert _api(key).get(STAFF).status_code == 200
    token = ApiToken.objects.get(user=officer, name="reporting script")
    assert token.expiry - token.created > timedelta(days=29)
    listing = client.get(TOKENS).content.decode()
    assert token.token_key in listing and key not in listing
    assert key not in _database_dump()


def test_dashboard_refuses_a_bad_name_and_keeps_what_was_typed(officer):
    res = _signed_in(officer).post(TOKENS, {"name": "x" * 65, "days": "30"})
    assert res.status_code == 400 and "x" * 65 in res.content.decode()
    res = _signed_in(officer).post(TOKENS, {"name": "ok", "days": "9999"})
    assert res.status_code == 400
    assert not ApiToken.objects.filter(user=officer).exclude(name="dsr_create_officer").exists()


def test_dashboard_revokes_after_confirmation(officer):
    token, key = api_token_create(user=officer, name="old script")
    client = _signed_in(officer)
    ask = client.post(f"{TOKENS}{token.token_key}/revoke/")
    assert ask.status_code == 200 and "Yes, revoke" in ask.content.decode()
    assert _api(key).get(STAFF).status_code == 200
    done = client.post(f"{TOKENS}{token.token_key}/revoke/", {"confirmed": "True"})
    assert done.status_code == 302
    assert "revoked" in client.get(TOKENS).content.decode()
    _assert_401_problem(_api(key).get(STAFF))


def test_nobody_reaches_another_users_tokens_on_the_dashboard(officer):
    other = officer_create(username="omar", email="omar@company.example")
    theirs, key = api_token_create(user=other, name="omar's server")
    client = _signed_in(officer)
    for data in ({}, {"confirmed": "True"}):
        assert client.post(f"{TOKENS}{theirs.token_key}/revoke/", data).status_code == 404
    assert _api(key).get(STAFF).status_code == 200
    assert theirs.token_key not in client.get(TOKENS).content.decode()


def test_dashboard_token_forms_need_the_csrf_token(officer):
    token, key = api_token_create(user=officer, name="ci")
    client = _signed_in(officer, enforce_csrf_checks=True)
    count = ApiToken.objects.count()
    assert client.post(TOKENS, {"name": "forged", "days": "30"}).status_code == 403
    assert client.post(f"{TOKENS}{token.token_key}/revoke/", {"confirmed": "True"}).status_code == 403
    assert ApiToken.objects.count() == count and _api(key).get(STAFF).status_code == 200
    page = client.get(TOKENS)
    csrf = page.cookies["csrftoken"].value
    assert client.post(TOKENS, {"name": "real", "days": "30", "csrfmiddlewaretoken": csrf}).status_code == 200
    assert ApiToken.objects.filter(user=officer, name="real").exists()


def test_dashboard_token_page_needs_the_role_and_the_second_factor(officer, settings):
    settings.DSR_REQUIRE_2FA = True
    assert Client().get(TOKENS).status_code == 302  # to sign-in
    reviewer = officer_create(username="rob", email="rob@company.example", role="reviewer")
    reviewer_client = _signed_in(reviewer)
    device = totp_device_create(user=reviewer)
    assert reviewer_client.post("/accounts/otp/", {"token": totp_code(device)}).status_code == 302
    assert reviewer_client.get(TOKENS).status_code == 403
    assert reviewer_client.post(TOKENS, {"name": "x", "days": "30"}).status_code == 403
    password_only = Client()
    password_only.post("/accounts/login/", {"username": "olivia", "password": "correct horse battery"})
    gate = password_only.post(TOKENS, {"name": "x", "days": "30"})
    assert gate.status_code == 302 and gate["Location"].startswith("/accounts/otp/")
    assert not ApiToken.objects.filter(name="x").exists()
    device = totp_device_create(user=officer)
    password_only.post("/accounts/otp/", {"token": totp_code(device)})
    assert password_only.get(TOKENS).status_code == 200


def test_dashboard_header_links_the_token_page_for_officers(officer):
    assert 'href="/dashboard/tokens/"' in _signed_in(officer).get("/dashboard/").content.decode()

"""Sign-in limits count failures per (username, client) and per client, so that nobody can lock an
officer out from elsewhere; the second factor likewise; password-reset emails are limited."""

import pytest
from django.contrib.auth.signals import user_login_failed
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import totp_device_create
from tests.support.otp import totp_code, totp_wrong_code

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
PASSWORD = "correct horse battery"
OWNER = "203.0.113.10"


@pytest.fixture
def device(officer):
    return totp_device_create(user=officer)


@pytest.fixture
def checked(officer):
    """Usernames whose password Django actually checked and found wrong."""
    seen = []

    def record(sender, credentials, **kwargs):
        seen.append(credentials.get("username"))

    user_login_failed.connect(record)
    yield seen
    user_login_failed.disconnect(record)


def _limits(settings, **rates):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, **rates}


def _sign_in(client, device, *, addr, password=PASSWORD):
    """Password, then the current TOTP code; the dashboard's answer at the end."""
    res = client.post(LOGIN, {"username": "olivia", "password": password, "next": "/dashboard/"}, REMOTE_ADDR=addr)
    assert res.status_code == 302, res.status_code
    # django-otp accepts each code once; a real sign-in later on comes in a later 30-second step.
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    res = client.post("/accounts/otp/", {"token": totp_code(device), "next": "/dashboard/"}, REMOTE_ADDR=addr)
    assert res.status_code == 302 and res["Location"] == "/dashboard/"
    return client.get("/dashboard/", REMOTE_ADDR=addr)


def _attack(*, clients: int, tries: int) -> list[int]:
    codes = []
    for n in range(clients):
        attacker = Client()
        for _ in range(tries):
            res = attacker.post(LOGIN, {"username": "olivia", "password": "guess"}, REMOTE_ADDR=f"198.51.100.{n}")
            codes.append(res.status_code)
    return codes


def test_failures_elsewhere_never_lock_the_owner_out(settings, device, checked):
    settings.DSR_REQUIRE_2FA = True
    _limits(settings, login_ip="5/hour", login_user_ip="3/hour", login_user="6/hour")
    codes = _attack(clients=6, tries=10)
    # Each attacker is refused after its own 3 failures — after 1 once the username is over its
    # ceiling of 6 — and its refused tries are not even checked.
    assert codes == ([200] * 3 + [429] * 7) * 2 + ([200] + [429] * 9) * 4
    assert checked == ["olivia"] * 10
    # The owner, from a client that has not been failing: password and code, and in.
    assert _sign_in(Client(), device, addr=OWNER).status_code == 200


def test_above_the_username_ceiling_unknown_clients_get_one_failure_and_known_browsers_keep_theirs(
    settings, device, checked
):
    settings.DSR_REQUIRE_2FA = True
    _limits(settings, login_ip="5/hour", login_user_ip="3/hour", login_user="6/hour")
    owner = Client()
    assert _sign_in(owner, device, addr=OWNER).status_code == 200  # this browser has signed in before
    owner.post("/accounts/logout/")
    _attack(clients=3, tries=3)  # 9 failures: over the ceiling
    # A new client may fail once for this username, then waits; the distributed guesser is slowed.
    newcomer = Client()
    assert (
        newcomer.post(LOGIN, {"username": "olivia", "password": "guess"}, REMOTE_ADDR="198.51.100.77").status_code
        == 200
    )
    refused = newcomer.post(LOGIN, {"username": "olivia", "password": PASSWORD}, REMOTE_ADDR="198.51.100.77")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in newcomer.session
    # The owner's browser mistypes twice and still gets in; so does a fresh client with no failures.
    for _ in range(2):
        assert owner.post(LOGIN, {"username": "olivia", "password": "typo"}, REMOTE_ADDR=OWNER).status_code == 200
    assert _sign_in(owner, device, addr=OWNER).status_code == 200
    assert _sign_in(Client(), device, addr="203.0.113.11").status_code == 200
    # Another username is not affected by olivia's ceiling.
    assert (
        newcomer.post(LOGIN, {"username": "someone", "password": "x"}, REMOTE_ADDR="198.51.100.77").status_code == 200
    )


def test_successful_sign_ins_are_not_counted(settings, device):
    settings.DSR_REQUIRE_2FA = True
    _limits(settings, login_ip="3/hour", login_user_ip="3/hour", login_user="3/hour", otp_user_ip="3/hour")
    client = Client()
    for _ in range(6):
        assert _sign_in(client, device, addr=OWNER).status_code == 200
        client.post("/accounts/logout/")
    # After six sign-ins the client still has all of its failures left.
    for _ in range(3):
        assert client.post(LOGIN, {"username": "olivia", "password": "typo"}, REMOTE_ADDR=OWNER).status_code == 200
    assert client.post(LOGIN, {"username": "olivia", "password": PASSWORD}, REMOTE_ADDR=OWNER).status_code == 429


@pytest.mark.parametrize("scope", ["login_ip", "login_user_ip"])
def test_a_client_over_its_limit_gets_the_page_and_its_password_is_not_checked(settings, officer, checked, scope):
    _limits(settings, **{scope: "2/hour"})
    client = Client()
    usernames = ["olivia", "olivia"] if scope == "login_user_ip" else ["nobody", "someone"]
    for username in usernames:
        assert (
            client.post(LOGIN, {"username": username, "password": "wrong"}, REMOTE_ADDR="198.51.100.1").status_code
            == 200
        )
    for password in ("wrong", PASSWORD):
        res = client.post(LOGIN, {"username": "olivia", "password": password}, REMOTE_ADDR="198.51.100.1")
        assert res.status_code == 429 and int(res["Retry-After"]) > 0
        assert "Too many attempts" in res.content.decode()
    assert checked == usernames and "_auth_user_id" not in client.session
    # The same username from elsewhere is fine.
    assert client.post(LOGIN, {"username": "olivia", "password": PASSWORD}, REMOTE_ADDR=OWNER).status_code == 302


def test_second_factor_failures_count_per_user_and_client(settings, device):
    settings.DSR_REQUIRE_2FA = True
    _limits(settings, otp_user_ip="2/hour")
    stolen = Client()  # someone who has the password, but not the authenticator
    assert (
        stolen.post(LOGIN, {"username": "olivia", "password": PASSWORD}, REMOTE_ADDR="198.51.100.1").status_code == 302
    )
    for _ in range(2):
        assert (
            stolen.post("/accounts/otp/", {"token": totp_wrong_code(device)}, REMOTE_ADDR="198.51.100.1").status_code
            == 400
        )
    # django-otp's own growing delay per device is a separate defence; let its wait pass.
    device.throttle_reset()
    for token in (totp_wrong_code(device), totp_code(device)):
        res = stolen.post("/accounts/otp/", {"token": token}, REMOTE_ADDR="198.51.100.1")
        assert res.status_code == 429 and int(res["Retry-After"]) > 0
    device.refresh_from_db()
    assert device.throttling_failure_count == 0  # the refused wrong code was not checked
    assert stolen.get("/dashboard/", REMOTE_ADDR="198.51.100.1").status_code == 302  # still not through
    # The owner, from another client, is not refused.
    assert _sign_in(Client(), device, addr=OWNER).status_code == 200


def test_password_reset_emails_are_limited_per_address_without_telling(settings, officer, mailoutbox):
    _limits(settings, password_reset_email="2/hour")
    answers = []
    for n in range(5):
        res = Client().post(
            "/accounts/password_reset/", {"email": "Olivia@company.example"}, REMOTE_ADDR=f"198.51.100.{n}"
        )
        answers.append((res.status_code, res["Location"]))
    unknown = Client().post(
        "/accounts/password_reset/", {"email": "nobody@company.example"}, REMOTE_ADDR="198.51.100.9"
    )
    # Every answer is the one any address gets; only the first two sent anything.
    assert answers == [(302, "/accounts/password_reset/done/")] * 5
    assert (unknown.status_code, unknown["Location"]) == answers[0]
    assert [m.to for m in mailoutbox] == [["olivia@company.example"]] * 2


def test_password_reset_is_limited_per_client(settings, officer, mailoutbox):
    _limits(settings, password_reset_ip="3/hour")
    client = Client()
    for address in ("a@example.org", "b@example.org", "olivia@company.example"):
        assert (
            client.post("/accounts/password_reset/", {"email": address}, REMOTE_ADDR="198.51.100.1").status_code == 302
        )
    sent = len(mailoutbox)
    res = client.post("/accounts/password_reset/", {"email": "olivia@company.example"}, REMOTE_ADDR="198.51.100.1")
    assert res.status_code == 429 and int(res["Retry-After"]) > 0
    assert len(mailoutbox) == sent == 1


def test_the_admin_signs_in_through_the_throttled_sign_in(client, officer, settings):
    res = client.get("/admin/login/?next=/admin/dsr/")
    assert res.status_code == 302 and res["Location"] == "/accounts/login/?next=/admin/dsr/"
    # Its own form is gone: a password posted there is not checked, so it cannot dodge the limits.
    client.post("/admin/login/", {"username": "olivia", "password": PASSWORD, "next": "/admin/"})
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/login/?next=https://evil.example/")["Location"] == "/accounts/login/?next=/admin/"
    # Signed in with the password only: on to the second factor.
    settings.DSR_REQUIRE_2FA = True
    client.force_login(officer)
    assert client.get("/admin/login/?next=/admin/")["Location"] == "/accounts/otp/?next=/admin/"


def test_sign_in_works_and_is_still_limited_when_the_cache_is_unreachable(settings, device, cache_unreachable):
    settings.DSR_REQUIRE_2FA = True
    _limits(settings, login_user_ip="2/hour", otp_user_ip="2/hour")
    assert _sign_in(Client(), device, addr=OWNER).status_code == 200
    attacker = Client()
    codes = [
        attacker.post(LOGIN, {"username": "olivia", "password": "guess"}, REMOTE_ADDR="198.51.100.1").status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]  # counted in this process meanwhile
    assert _sign_in(Client(), device, addr="203.0.113.11").status_code == 200


@pytest.mark.redis
def test_failures_are_counted_in_the_real_shared_cache(settings, device):
    import os
    import uuid

    import redis

    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": prefix,
        }
    }
    settings.DSR_REQUIRE_2FA = True
    _limits(settings, login_user_ip="2/hour", intake="2/hour")
    attacker = Client()
    codes = [
        attacker.post(LOGIN, {"username": "olivia", "password": "guess"}, REMOTE_ADDR="198.51.100.1").status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    assert _sign_in(Client(), device, addr=OWNER).status_code == 200
    intake = [
        Client().post("/api/v1/requests/", {}, content_type="application/json", REMOTE_ADDR="198.51.100.1").status_code
        for _ in range(3)
    ]
    assert intake == [400, 400, 429]
    keys = redis.Redis.from_url(os.environ["REDIS_URL"]).keys(f"{prefix}:*dsr-rl:*")
    assert {key.decode().split(":")[3] for key in keys} >= {"login_user_ip", "login_ip", "login_user", "intake"}

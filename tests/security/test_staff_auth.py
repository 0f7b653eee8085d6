"""Staff sign-in: two steps (password, then TOTP), throttled."""

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.support.otp import totp_code, totp_wrong_code

pytestmark = pytest.mark.django_db


def test_first_sign_in_sets_up_the_authenticator_then_it_is_required(client, officer, settings):
    settings.DSR_REQUIRE_2FA = True
    res = client.post(
        "/accounts/login/?next=/dashboard/",
        {"username": "olivia", "password": "correct horse battery", "next": "/dashboard/"},
    )
    assert res.status_code == 302
    gate = client.get("/dashboard/")
    assert gate.status_code == 302 and gate["Location"].startswith("/accounts/otp/")
    setup = client.get(gate["Location"])
    html = setup.content.decode()
    assert "<svg" in html and re.search(r'id="totp-secret">[A-Z2-7]+<', html)
    device = TOTPDevice.objects.get(user=officer)
    assert not device.confirmed
    wrong = client.post("/accounts/otp/", {"token": totp_wrong_code(device), "next": "/dashboard/"})
    assert wrong.status_code == 400
    # django-otp makes the device wait longer after each wrong code; let that wait pass.
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    device.throttle_reset()
    ok = client.post("/accounts/otp/", {"token": totp_code(device), "next": "/dashboard/"})
    assert ok.status_code == 302 and ok["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    # Next time: a password alone is not enough, and no new secret is shown.
    client.logout()
    client.post("/accounts/login/", {"username": "olivia", "password": "correct horse battery"})
    assert client.get("/dashboard/").status_code == 302
    assert "totp-secret" not in client.get("/accounts/otp/").content.decode()


def test_off_site_next_is_ignored(client, officer, settings):
    settings.DSR_REQUIRE_2FA = True
    client.post("/accounts/login/", {"username": "olivia", "password": "correct horse battery"})
    client.get("/accounts/otp/")
    device = TOTPDevice.objects.get(user=officer)
    res = client.post("/accounts/otp/", {"token": totp_code(device), "next": "https://evil.example/"})
    assert res["Location"] == "/dashboard/"


def test_login_is_throttled(client, officer, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "login_user_ip": "3/hour"}
    for _ in range(3):
        assert client.post("/accounts/login/", {"username": "olivia", "password": "wrong"}).status_code == 200
    res = client.post("/accounts/login/", {"username": "olivia", "password": "correct horse battery"})
    assert res.status_code == 429 and int(res["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session

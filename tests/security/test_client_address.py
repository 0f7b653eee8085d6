"""One function decides the client address for every limit (dsr.ratelimit.client_ip): the socket
peer, or — only when that peer is a trusted proxy — the first untrusted X-Forwarded-For entry from
the right. Tested as a function, and as the rule over every endpoint with a limit on the client."""

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory

from dsr.ratelimit import UNKNOWN_CLIENT, client_ip
from tests.factories import request_create
from tests.support import ROOT

PROXIES = ["10.0.0.0/8", "192.0.2.1", "fd00::/8"]


def _ip(remote_addr, forwarded=None):
    meta = {"REMOTE_ADDR": remote_addr}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


@pytest.mark.parametrize(
    "remote_addr, forwarded, expected",
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.7", "203.0.113.5"),
        ("10.0.0.2", "198.51.100.7", "10.0.0.2"),  # even a private peer: nobody is trusted
        ("2001:db8::1", "198.51.100.7", "2001:db8::/64"),
        ("", "198.51.100.7", UNKNOWN_CLIENT),
    ],
)
def test_without_trusted_proxies_forwarding_headers_are_ignored(settings, remote_addr, forwarded, expected):
    settings.DSR_TRUSTED_PROXIES = []
    assert _ip(remote_addr, forwarded) == expected


@pytest.mark.parametrize(
    "remote_addr, forwarded, expected",
    [
        # untrusted peer: its header is whatever the client wrote
        ("203.0.113.5", "198.51.100.7", "203.0.113.5"),
        ("203.0.113.5", "10.0.0.9", "203.0.113.5"),
        # trusted peer: the entry it appended is the client
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),
        # a spoofed left-most entry changes nothing
        ("10.0.0.2", "1.1.1.1, 198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "1.1.1.1, 2.2.2.2, 198.51.100.7", "198.51.100.7"),
        # a chain of trusted proxies is skipped, address or network, in any order
        ("10.0.0.2", "1.1.1.1, 198.51.100.7, 192.0.2.1, 10.9.8.7", "198.51.100.7"),
        # spaces, ports, repeated headers (joined with a comma), empty entries
        ("10.0.0.2", "  1.1.1.1 ,198.51.100.7  ,  10.9.8.7 ", "198.51.100.7"),
        ("10.0.0.2", "1.1.1.1,198.51.100.7:4711", "198.51.100.7"),
        ("10.0.0.2", "1.1.1.1, 198.51.100.7, , 10.9.8.7,", "198.51.100.7"),
        # garbage stops the walk at the trusted hop that passed it on: it never chooses the bucket
        ("10.0.0.2", "198.51.100.7, unknown", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.7, not-an-ip, 10.9.8.7", "10.9.8.7"),
        ("10.0.0.2", "garbage, 198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "1.1.1.1, 999.1.1.1", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.7/24", "10.0.0.2"),
        ("10.0.0.2", "<script>, 198.51.100.7\x00", "10.0.0.2"),
        # every entry trusted: the request started at the left-most hop
        ("10.0.0.2", "10.1.1.1, 192.0.2.1", "10.1.1.1"),
        # IPv6: clients counted per /64, brackets and zones understood, IPv4-mapped addresses are IPv4
        ("fd00::2", "2001:db8:2::7", "2001:db8:2::/64"),
        ("10.0.0.2", "1.1.1.1, [2001:db8:1:2::5]:443", "2001:db8:1:2::/64"),
        ("10.0.0.2", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("10.0.0.2", "fe80::1%eth0", "fe80::/64"),
        ("::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "::ffff:198.51.100.7", "198.51.100.7"),
        ("2001:db8::1", "198.51.100.7", "2001:db8::/64"),
        # an unreadable socket address: one shared bucket, header ignored
        ("", "198.51.100.7", UNKNOWN_CLIENT),
        ("unix:/run/gunicorn.sock", "198.51.100.7", UNKNOWN_CLIENT),
    ],
)
def test_behind_trusted_proxies_the_first_untrusted_address_from_the_right(settings, remote_addr, forwarded, expected):
    settings.DSR_TRUSTED_PROXIES = PROXIES
    assert _ip(remote_addr, forwarded) == expected


def test_a_wrong_trusted_proxy_entry_is_a_configuration_error(settings, tmp_path):
    settings.DSR_TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    with pytest.raises(ImproperlyConfigured, match="proxy.internal"):
        _ip("10.0.0.2", "198.51.100.7")
    # From the environment it stops the start, naming the entry.
    env = {
        **os.environ,
        "DSR_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal",
        "DSR_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings.run",
    }
    run = subprocess.run(
        [sys.executable, "-c", "import config.settings.run"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode != 0 and "DSR_TRUSTED_PROXIES: 'proxy.internal'" in run.stderr


# --- The rule, over every endpoint with a limit on the client -------------------------------------


@dataclass
class Limited:
    name: str
    scope: str
    attempt: Callable  # (client, context, **meta) -> response; one attempt counted in `scope`


def _otp_attempt(client, ctx, **meta):
    return client.post("/accounts/otp/", {"token": "12345678"}, **meta)  # never a valid 6-digit code


LIMITED = [
    Limited("public form", "form_ip", lambda c, ctx, **m: c.post("/", {}, **m)),
    Limited(
        "API intake",
        "intake",
        lambda c, ctx, **m: c.post("/api/v1/requests/", {}, content_type="application/json", **m),
    ),
    Limited(
        "verification code",
        "verify_ip",
        lambda c, ctx, **m: c.post(f"/r/{ctx['request'].public_token}/", {"action": "code", "code": "000000"}, **m),
    ),
    Limited("verification link", "verify_ip", lambda c, ctx, **m: c.post("/v/not-a-real-link/", {}, **m)),
    Limited(
        "resend",
        "verify_ip",
        lambda c, ctx, **m: c.post(f"/r/{ctx['request'].public_token}/", {"action": "resend"}, **m),
    ),
    Limited(
        "sign-in",
        "login_ip",
        lambda c, ctx, **m: c.post("/accounts/login/", {"username": "olivia", "password": "wrong"}, **m),
    ),
    Limited("second factor", "otp_user_ip", _otp_attempt),
    Limited(
        "password reset",
        "password_reset_ip",
        lambda c, ctx, **m: c.post("/accounts/password_reset/", {"email": "olivia@company.example"}, **m),
    ),
]


@pytest.fixture
def context(db, officer):
    return {"officer": officer, "request": request_create()}


def _client(case, ctx):
    client = Client()
    if case.scope == "otp_user_ip":
        client.force_login(ctx["officer"])  # the second step: the password is done
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("trusted", [[], PROXIES], ids=["no-proxy-trusted", "peer-not-a-trusted-proxy"])
@pytest.mark.parametrize("case", LIMITED, ids=lambda c: c.name)
def test_spoofed_forwarded_for_does_not_escape_a_limit(settings, context, case, trusted):
    settings.DSR_TRUSTED_PROXIES = trusted
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, case.scope: "2/hour"}
    client = _client(case, context)
    for i in range(2):
        res = case.attempt(client, context, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        assert res.status_code != 429, (case.name, i)
    for spoof in ("198.51.100.200", "10.0.0.1", "198.51.100.201, 10.0.0.2", "2001:db8::9"):
        res = case.attempt(client, context, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR=spoof)
        assert res.status_code == 429 and int(res["Retry-After"]) > 0, (case.name, spoof)
    # The limit is on that socket address, not on everyone.
    assert case.attempt(client, context, REMOTE_ADDR="203.0.113.6").status_code != 429


@pytest.mark.django_db
@pytest.mark.parametrize("case", LIMITED, ids=lambda c: c.name)
def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(settings, context, case):
    settings.DSR_TRUSTED_PROXIES = PROXIES
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, case.scope: "2/hour"}
    client = _client(case, context)
    via_proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for _ in range(2):
        assert case.attempt(client, context, HTTP_X_FORWARDED_FOR="198.51.100.7", **via_proxy).status_code != 429
    # The same client again, with invented entries on the left (and through a second proxy): refused.
    for forwarded in ("198.51.100.7", "203.0.113.99, 198.51.100.7", "1.1.1.1, 198.51.100.7, 10.20.30.40"):
        res = case.attempt(client, context, HTTP_X_FORWARDED_FOR=forwarded, **via_proxy)
        assert res.status_code == 429 and int(res["Retry-After"]) > 0, (case.name, forwarded)
    # Another real client behind the same proxy is not in that bucket.
    assert case.attempt(client, context, HTTP_X_FORWARDED_FOR="198.51.100.8", **via_proxy).status_code != 429

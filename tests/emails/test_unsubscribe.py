"""One-click unsubscribe (RFC 8058): an opaque, signed, expiring token that names no address; a
repeat of any kind is answered the same way and changes nothing."""

import base64
import binascii
import re
import time

import pytest
from django.core import signing
from django.test import Client

from dsr.models import AuditEvent, DataSubjectRequest, MarketingUnsubscribe, OutboundEmail
from dsr.services.unsubscribe import unsubscribe_token
from tests.factories import request_create
from tests.support.services import in_threads

ADDRESS = "news.reader@example.org"


def _path(token):
    return f"/unsubscribe/{token}/"


def _state():
    return (DataSubjectRequest.objects.count(), OutboundEmail.objects.count(), AuditEvent.objects.count())


def _decodings(token: str):
    """Every way the token's pieces could be read back: as they are and base64-decoded."""
    for piece in re.split(r"[:.]", token):
        yield piece
        for padded in (piece + "=" * (-len(piece) % 4),):
            try:
                yield base64.urlsafe_b64decode(padded).decode("latin-1")
            except (binascii.Error, ValueError):
                pass


@pytest.mark.django_db
def test_the_token_is_opaque_and_names_no_address():
    token = unsubscribe_token(ADDRESS)
    assert "@" not in token
    for text in _decodings(token):
        assert "news" not in text.lower() and "example" not in text.lower()
    other = unsubscribe_token("someone.else@example.org")
    assert token.split(":")[0] != other.split(":")[0]  # a random key per address, not derived from it
    record = MarketingUnsubscribe.objects.get(email=ADDRESS)
    assert record.key in token and record.used_at is None


@pytest.mark.django_db
def test_a_repeat_click_changes_nothing(client, django_capture_on_commit_callbacks, mailoutbox):
    token = unsubscribe_token(ADDRESS)
    assert client.get(_path(token)).status_code == 200 and _state() == (0, 0, 0)  # opening the link does nothing
    mail_client = Client(enforce_csrf_checks=True)  # RFC 8058: no cookies, no CSRF token
    with django_capture_on_commit_callbacks(execute=True):
        first = mail_client.post(_path(token), {"List-Unsubscribe": "One-Click"})
    assert first.status_code == 200
    after_first = _state()
    r = DataSubjectRequest.objects.get()
    assert (r.email, r.request_type) == (ADDRESS, "opt_out_marketing") and len(mailoutbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        again = mail_client.post(_path(token), {"List-Unsubscribe": "One-Click"})
        person = client.post(_path(token))  # the person clicks the button too
        page = client.get(_path(token))
    assert again.status_code == 200 and person.status_code == 200
    assert "no more marketing email" in person.content.decode() and "no more marketing email" in page.content.decode()
    assert _state() == after_first and len(mailoutbox) == 1  # no new request, email or event


@pytest.mark.django_db
def test_every_email_to_an_address_unsubscribes_once(
    client, django_capture_on_commit_callbacks, mailoutbox, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=True):
        request_create(request_type="opt_out_marketing", email=ADDRESS)
    links = [
        m.extra_headers["List-Unsubscribe"].split(">")[0].lstrip("<").replace("http://testserver", "")
        for m in mailoutbox
    ]
    later = time.time() + 3600
    monkeypatch.setattr(signing.time, "time", lambda: later)  # a later email's token, a later time stamp
    links.append(_path(unsubscribe_token(ADDRESS)))
    assert len(set(links)) == 2 and MarketingUnsubscribe.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(links[0], {"List-Unsubscribe": "One-Click"}).status_code == 200
    before = _state()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(links[1], {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _state() == before


@pytest.mark.django_db
def test_altered_forged_and_old_format_tokens_do_nothing(client):
    token = unsubscribe_token(ADDRESS)
    key, stamp, signature = token.split(":")
    old_format = signing.dumps({"e": ADDRESS}, salt="dsr.unsubscribe", compress=True)  # the address, base64

    def flip(text):
        return text[:-1] + ("A" if text[-1] != "A" else "B")

    forged = [
        f"{key}:{stamp}:{flip(signature)}",
        f"{flip(key)}:{stamp}:{signature}",
        f"{key}:{flip(stamp)}:{signature}",
        key,
        "x" * 40,
        signing.TimestampSigner(salt="other").sign(key),
        old_format,
    ]
    for bad in forged:
        for method in (client.get, client.post):
            res = method(_path(bad))
            assert res.status_code == 404, bad
            assert ADDRESS not in res.content.decode() and "request form" in res.content.decode()
    assert _state() == (0, 0, 0)


@pytest.mark.django_db
def test_links_expire_after_the_configured_days(client, settings, monkeypatch):
    settings.DSR_UNSUBSCRIBE_DAYS = 365
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now - 366 * 86400)
    stale = unsubscribe_token(ADDRESS)
    monkeypatch.setattr(signing.time, "time", lambda: now - 364 * 86400)
    fresh = unsubscribe_token(ADDRESS)
    monkeypatch.setattr(signing.time, "time", lambda: now)
    assert client.post(_path(stale), {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert DataSubjectRequest.objects.count() == 0
    assert client.post(_path(fresh), {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert DataSubjectRequest.objects.count() == 1


@pytest.mark.postgres
def test_two_clicks_at_the_same_moment_count_once(transactional_db):
    token = unsubscribe_token(ADDRESS)
    codes, errors = in_threads(4, lambda i: Client().post(_path(token), {"List-Unsubscribe": "One-Click"}).status_code)
    assert errors == [] and codes == [200] * 4
    assert DataSubjectRequest.objects.filter(email=ADDRESS).count() == 1
    assert OutboundEmail.objects.filter(to=ADDRESS).count() == 1
    assert MarketingUnsubscribe.objects.get(email=ADDRESS).used_at is not None

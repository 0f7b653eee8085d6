"""The real ESP path through django-anymail: a fake ESP on loopback that fails, then accepts;
its tracking webhook reporting delivery and bounces; one-click unsubscribe."""

import base64
import json

import pytest

from dsr.models import DataSubjectRequest, EmailStatus, OutboundEmail, Status
from dsr.services.emails import outbound_email_send
from dsr.services.unsubscribe import unsubscribe_token
from tests.factories import request_create
from tests.support.esp import FakeEspApi

pytestmark = pytest.mark.django_db


@pytest.fixture
def esp(settings):
    fake = FakeEspApi.postmark(failures=1)
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "server-token",
        "POSTMARK_API_URL": fake.url,
        "WEBHOOK_SECRET": "hook:secret",
    }
    yield fake
    fake.close()


def test_esp_fails_then_succeeds_and_the_message_id_is_kept(esp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        r = request_create(email="esp@example.org", language="nl")
    email = OutboundEmail.objects.get(request=r)
    assert outbound_email_send(email_id=email.pk).outcome == "retry"
    email.refresh_from_db()
    assert email.status == EmailStatus.QUEUED and "500" in email.last_error
    assert outbound_email_send(email_id=email.pk).outcome == "sent"
    assert outbound_email_send(email_id=email.pk).outcome == "already_done"  # a redelivery sends nothing
    email.refresh_from_db()
    assert (email.status, email.message_id, email.attempts) == (EmailStatus.SENT, "esp-2", 2)
    assert len(esp.received) == 2
    sent = esp.received[-1]
    assert esp.headers[-1]["X-Postmark-Server-Token"] == "server-token" and sent["To"] == "esp@example.org"
    assert sent["Subject"].startswith("Wij hebben uw privacyverzoek")
    assert "Bevestig eerst uw e-mailadres" in sent["TextBody"]
    assert "<a href=" in sent["HtmlBody"] and f"/r/{r.public_token}/" in sent["HtmlBody"]
    assert sent["Tag"] == "received"


def _webhook(client, payload, auth="hook:secret"):
    return client.post(
        "/anymail/postmark/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(auth.encode()).decode(),
    )


def _sent_email(esp, email_address="track@example.org"):
    with_request = request_create(email=email_address)
    email = OutboundEmail.objects.get(request=with_request)
    outbound_email_send(email_id=email.pk)
    outbound_email_send(email_id=email.pk)
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    return with_request, email


def test_delivery_is_recorded_from_the_signed_webhook(client, esp, officer):
    r, email = _sent_email(esp)
    assert (
        _webhook(
            client,
            {
                "RecordType": "Delivery",
                "MessageID": email.message_id,
                "Recipient": r.email,
                "DeliveredAt": "2026-11-22T10:01:00Z",
                "Details": "OK",
            },
            auth="hook:wrong",
        ).status_code
        == 400
    )
    email.refresh_from_db()
    assert email.delivery_status == ""  # a wrong secret changes nothing
    res = _webhook(
        client,
        {
            "RecordType": "Delivery",
            "MessageID": email.message_id,
            "Recipient": r.email,
            "DeliveredAt": "2026-11-22T10:01:00Z",
            "Details": "OK",
        },
    )
    assert res.status_code == 200
    email.refresh_from_db()
    assert email.delivery_status == "delivered"
    assert r.events.filter(event_type="email_delivered").exists()
    r.refresh_from_db()
    assert r.flagged_at is None


def test_bounce_flags_the_request_and_tells_the_team_once(client, esp, officer, mailoutbox, settings):
    r, email = _sent_email(esp, "bounce@example.org")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the team's mail, seen here
    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "MessageID": email.message_id,
        "Email": r.email,
        "BouncedAt": "2026-11-22T10:02:00Z",
        "Description": "The server was unable to deliver your message",
    }
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert _webhook(client, bounce).status_code == 200
        assert _webhook(client, bounce).status_code == 200  # the ESP retries its webhook
    r.refresh_from_db()
    email.refresh_from_db()
    assert email.delivery_status == "bounced" and r.flagged_at is not None
    assert "received" in r.flag_reason
    team = [m for m in mailoutbox if m.to == ["olivia@company.example"]]
    assert len(team) == 1 and r.reference in team[0].subject and "(bounced)" in team[0].body
    # The team's email repeats nothing typed from outside (the address, the server's text): the
    # request page shows them, escaped.
    assert "bounce@example.org" not in team[0].body and "unable to deliver" not in team[0].body


def test_marketing_emails_carry_one_click_unsubscribe(client, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(request_type="opt_out_marketing", email="news@example.org")
    message = mailoutbox[-1]
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message.extra_headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    assert url.startswith("http://testserver/unsubscribe/")
    other = request_create(request_type="access", email="plain@example.org")
    assert "List-Unsubscribe" not in OutboundEmail.objects.filter(request=other).first().headers
    # The mail client's one-click POST: no cookie, no CSRF token.
    path = url.replace("http://testserver", "")
    from django.test import Client

    assert Client(enforce_csrf_checks=True).post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    opt_outs = DataSubjectRequest.objects.filter(email="news@example.org", request_type="opt_out_marketing")
    assert opt_outs.count() == 2 and opt_outs.filter(status=Status.CANCELLED, duplicate_of=r).count() == 1


def test_unsubscribe_from_a_non_marketing_address_and_bad_tokens(client):
    token = unsubscribe_token("reader@example.org")
    page = client.get(f"/unsubscribe/{token}/")
    assert page.status_code == 200 and "<form" in page.content.decode()
    assert DataSubjectRequest.objects.count() == 0  # opening the link does nothing
    assert client.post(f"/unsubscribe/{token}/").status_code == 200
    r = DataSubjectRequest.objects.get()
    assert (r.email, r.request_type, r.status) == ("reader@example.org", "opt_out_marketing", Status.IN_PROGRESS)
    assert client.post(f"/unsubscribe/{token[:-3]}xyz/").status_code == 404
    assert DataSubjectRequest.objects.count() == 1

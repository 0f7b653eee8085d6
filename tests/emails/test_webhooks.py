"""The ESP tracking webhooks under /anymail/: refused without the shared secret, and for every ESP
anymail ships, a body that is not that ESP's events answers 400, never 500, and records nothing."""

import base64
import hashlib
import hmac
import json
import re
import warnings

import pytest
from anymail import urls as anymail_urls
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import QueryDict

from dsr.models import AuditEvent, DataSubjectRequest, EmailStatus, OutboundEmail
from dsr.services.emails import outbound_email_send
from tests.factories import request_create

pytestmark = pytest.mark.django_db

SECRET = "hook:secret"
MAILGUN_KEY = "mailgun-signing-key"
MANDRILL_KEY = "mandrill-webhook-key"
MAILERSEND_SECRET = "mailersend-signing-secret"
UNISENDER_KEY = "unisender-api-key"


def _path(pattern) -> str:
    """The URL of an anymail pattern (its one regex pattern, Mailgun inbound, without the option)."""
    text = re.sub(r"\(.*?\)\?", "", str(pattern.pattern)).lstrip("^").rstrip("$")
    return "/anymail/" + text


def _is_inbound(pattern) -> bool:
    return "inbound" in pattern.name


ALL = list(anymail_urls.urlpatterns)
TRACKING = [p for p in ALL if not _is_inbound(p)]
INBOUND = [p for p in ALL if _is_inbound(p)]


def test_every_esp_with_a_tracking_webhook_is_covered():
    esps = {p.name.split("_tracking_webhook")[0].split("_webhook")[0] for p in TRACKING}
    # Sanity: the enumeration really found anymail's ESPs, not an empty or partial list.
    assert {
        "amazon_ses",
        "mailgun",
        "mandrill",
        "postmark",
        "sendgrid",
        "sparkpost",
        "postal",
        "mailersend",
        "unisender_go",
        "brevo",
        "mailjet",
        "resend",
        "mailtrap",
        "sendinblue",
    } <= esps
    assert INBOUND


def _auth(secret=SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


@pytest.fixture
def sent(django_capture_on_commit_callbacks):
    """A sent email whose message id a forged event could name."""
    with django_capture_on_commit_callbacks(execute=False):
        r = request_create(email="tracked@example.org")
    email = OutboundEmail.objects.get(request=r)
    outbound_email_send(email_id=email.pk)
    OutboundEmail.objects.filter(pk=email.pk).update(message_id="esp-42")
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    return r, email


def _nothing_recorded(r, email, events_before):
    email.refresh_from_db()
    r = DataSubjectRequest.objects.get(pk=r.pk)
    assert email.delivery_status == "" and email.delivery_updated_at is None
    assert r.flagged_at is None
    assert AuditEvent.objects.count() == events_before


def test_without_the_secret_every_anymail_endpoint_refuses(client, settings, sent):
    """Before: anymail only warned and accepted; a forged complaint flagged the request."""
    settings.ANYMAIL = {}
    r, email = sent
    before = AuditEvent.objects.count()
    complaint = {
        "RecordType": "SpamComplaint",
        "MessageID": "esp-42",
        "Email": r.email,
        "BouncedAt": "2026-11-22T10:02:00Z",
    }
    for pattern in ALL:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = client.post(_path(pattern), data=json.dumps(complaint), content_type="application/json", **_auth())
        # Tracking refused for want of the secret; inbound not served at all.
        assert res.status_code == (404 if _is_inbound(pattern) else 403), (pattern.name, res.status_code)
    _nothing_recorded(r, email, before)


def test_inbound_endpoints_are_not_served(client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    for pattern in INBOUND:
        assert client.post(_path(pattern), data="{}", content_type="application/json", **_auth()).status_code == 404, (
            pattern.name
        )


def test_the_secret_is_checked_before_any_esp_code(client, settings, sent):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    r, email = sent
    before = AuditEvent.objects.count()
    complaint = json.dumps({"RecordType": "SpamComplaint", "MessageID": "esp-42", "Email": r.email})
    for pattern in TRACKING:
        missing = client.post(_path(pattern), data=complaint, content_type="application/json")
        assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Basic"), pattern.name
        wrong = client.post(_path(pattern), data=complaint, content_type="application/json", **_auth("hook:wrong"))
        assert wrong.status_code == 400, pattern.name
    _nothing_recorded(r, email, before)


# --- Malformed bodies -----------------------------------------------------------------------------

GARBAGE = [
    ("not json", "application/json", b"{this is not json"),
    ("empty", "application/json", b""),
    ("binary", "application/octet-stream", b"\xff\xfe\x00\x81\x00garbage"),
    ("json list of scalars", "application/json", b'[1, "two", null, {"x": [[]]}, true]'),
    ("json scalar", "application/json", b'"just a string"'),
    ("json number", "application/json", b"42"),
    ("json object of the wrong shape", "application/json", b'{"unexpected": {"deeply": ["nested", 1]}}'),
    # The fields the ESPs read, present but of the wrong type, naming the sent email's id.
    (
        "json fields of the wrong type",
        "application/json",
        json.dumps(
            {
                "RecordType": ["SpamComplaint"],
                "MessageID": {"id": "esp-42"},
                "Type": 7,
                "event": {"x": 1},
                "event-data": "esp-42",
                "data": 7,
                "msys": [1],
                "events_by_user": "esp-42",
                "type": ["bounced"],
                "message-id": ["esp-42"],
                "payload": "esp-42",
                "eventType": {"a": 1},
                "mail": "esp-42",
            }
        ).encode(),
    ),
    # The envelope an ESP uses (Mailtrap's and SendGrid's lists, SES's event type), with junk inside.
    (
        "json envelope with junk inside",
        "application/json",
        json.dumps(
            {
                "events": [1, "two", {"event": ["spam"], "message_id": {"id": "esp-42"}}],
                "eventType": "Complaint",
                "notificationType": "Complaint",
                "mail": 5,
                "complaint": "esp-42",
            }
        ).encode(),
    ),
    (
        "json nul in the id",
        "application/json",
        json.dumps(
            {
                "RecordType": "SpamComplaint",
                "MessageID": "esp-42\u0000",
                "event": "spam",
                "message-id": "esp-42\u0000",
            }
        ).encode(),
    ),
    (
        "form junk",
        "application/x-www-form-urlencoded",
        b"a=1&b=%ZZ&mandrill_events=%7Bnope&event=complained&Message-Id=%00",
    ),
]


def _rsa():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode(), lambda body: base64.b64encode(
        key.sign(body, padding.PKCS1v15(), hashes.SHA1())
    ).decode()


def _json_object(body: bytes) -> dict | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _mailgun_signed(body: bytes, content_type: str):
    """Mailgun's signature travels inside the payload: add a valid one where the body allows."""
    token, timestamp = "t" * 50, "1700000000"
    signature = hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    block = {"token": token, "timestamp": timestamp, "signature": signature}
    if content_type == "application/json":
        data = _json_object(body)
        return None if data is None else json.dumps({**data, "signature": block}).encode()
    if content_type == "application/x-www-form-urlencoded":
        return body + b"&" + "&".join(f"{k}={v}" for k, v in block.items()).encode()
    return None


def _unisender_signed(body: bytes, content_type: str):
    data = _json_object(body)
    if data is None:
        return None
    with_key = json.dumps({**data, "auth": UNISENDER_KEY})
    return with_key.replace(UNISENDER_KEY, hashlib.md5(with_key.encode()).hexdigest()).encode()


def _variants(name: str, path: str, postal_sign):
    """Each garbage body as posted raw, and, for an ESP that signs its calls, also signed (or
    wrapped, for Amazon SNS) so that it gets past the ESP's own checks to the parser."""
    for label, content_type, body in GARBAGE:
        headers = {}
        yield label, content_type, body, headers
        signed = None
        if name.startswith("mailersend"):
            signed = (body, {"HTTP_SIGNATURE": hmac.new(MAILERSEND_SECRET.encode(), body, hashlib.sha256).hexdigest()})
        elif name.startswith("postal"):
            signed = (body, {"HTTP_X_POSTAL_SIGNATURE": postal_sign(body)})
        elif name.startswith("mandrill"):
            url = f"http://{SECRET}@testserver{path}"
            params = QueryDict(body) if content_type == "application/x-www-form-urlencoded" else {}
            data = url + "".join(key + params[key] for key in sorted(params))
            digest = base64.b64encode(hmac.new(MANDRILL_KEY.encode(), data.encode(), hashlib.sha1).digest()).decode()
            signed = (body, {"HTTP_X_MANDRILL_SIGNATURE": digest})
        elif name.startswith("mailgun"):
            signed_body = _mailgun_signed(body, content_type)
            signed = (signed_body, {}) if signed_body else None
        elif name.startswith("unisender_go"):
            signed_body = _unisender_signed(body, content_type)
            signed = (signed_body, {}) if signed_body else None
        elif name.startswith("amazon_ses"):
            envelope = json.dumps(
                {
                    "Type": "Notification",
                    "MessageId": "sns-1",
                    "TopicArn": "arn:aws:sns:us-east-1:1:t",
                    "Message": body.decode("utf-8", "replace"),
                }
            ).encode()
            signed = (envelope, {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification", "HTTP_X_AMZ_SNS_MESSAGE_ID": "sns-1"})
            content_type = "text/plain"  # as SNS posts
        if signed:
            yield f"{label} (signed)", content_type, signed[0], {**headers, **signed[1]}


@pytest.fixture
def every_esp_configured(settings, monkeypatch):
    """The shared secret and each ESP's own signing key, so each view starts and checks calls."""
    postal_key, postal_sign = _rsa()
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "MANDRILL_WEBHOOK_KEY": MANDRILL_KEY,
        "MAILERSEND_SIGNING_SECRET": MAILERSEND_SECRET,
        "POSTAL_WEBHOOK_KEY": postal_key,
        "UNISENDER_GO_API_KEY": UNISENDER_KEY,
    }
    # Amazon SES's view prepares boto3 sessions (for S3 and SNS calls the tracking parser does not
    # make); boto3 is not installed here, so stand in for that preparation only.
    from anymail.webhooks import amazon_ses

    monkeypatch.setattr(amazon_ses, "_get_anymail_boto3_params", lambda kwargs=None: ({}, {}))
    return postal_sign


def test_malformed_bodies_answer_400_for_every_esp_and_record_nothing(client, sent, every_esp_configured, monkeypatch):
    """Before: anymail's parsers raised on these bodies and the server answered 500."""
    r, email = sent
    before = AuditEvent.objects.count()
    parsed = {}

    # Count, per view, the calls that got past the ESP's own checks to its parser.
    for pattern in TRACKING:
        view_class = pattern.callback.view_class
        original = view_class.parse_events

        def counting(self, request, _original=original, _name=pattern.name):
            parsed[_name] = parsed.get(_name, 0) + 1
            return _original(self, request)

        monkeypatch.setattr(view_class, "parse_events", counting)

    failures = []
    for pattern in TRACKING:
        path = _path(pattern)
        for label, content_type, body, headers in _variants(pattern.name, path, every_esp_configured):
            res = client.post(path, data=body, content_type=content_type, **_auth(), **headers)
            if res.status_code != 400:
                failures.append((pattern.name, label, res.status_code))
    assert failures == [], failures
    # Every ESP's parser was reached, signed calls included, so the 400s are not all the secret's.
    assert sorted(parsed) == sorted(p.name for p in TRACKING)
    _nothing_recorded(r, email, before)


def test_an_esp_that_is_not_set_up_answers_404_not_500(client, settings, sent):
    """Only the shared secret set: the ESPs that need their own key (Mailgun, Postal, MailerSend,
    Unisender Go, Mandrill) or library (Amazon SES: boto3) refuse cleanly instead of crashing."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    r, email = sent
    before = AuditEvent.objects.count()
    not_set_up = ("mailgun", "postal", "mailersend", "unisender_go", "amazon_ses", "mandrill")
    for pattern in TRACKING:
        expected = 404 if pattern.name.startswith(not_set_up) else 400  # the others parse, and refuse the body
        for label, content_type, body in GARBAGE:
            res = client.post(_path(pattern), data=body, content_type=content_type, **_auth())
            assert res.status_code == expected, (pattern.name, label, res.status_code)
    for name in (
        "mailgun_tracking_webhook",
        "postal_tracking_webhook",
        "mailersend_tracking_webhook",
        "unisender_go_tracking_webhook",
        "amazon_ses_tracking_webhook",
    ):
        pattern = next(p for p in TRACKING if p.name == name)
        assert client.post(_path(pattern), data=b"{}", content_type="application/json", **_auth()).status_code == 404
    _nothing_recorded(r, email, before)


def test_a_real_event_still_goes_through_the_guard(client, settings, sent):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    r, email = sent
    res = client.post(
        "/anymail/postmark/tracking/",
        content_type="application/json",
        **_auth(),
        data=json.dumps(
            {
                "RecordType": "Delivery",
                "MessageID": "esp-42",
                "Recipient": r.email,
                "DeliveredAt": "2026-11-22T10:01:00Z",
            }
        ),
    )
    assert res.status_code == 200
    email.refresh_from_db()
    assert email.delivery_status == "delivered"


# --- The system check -----------------------------------------------------------------------------


def _deploy_check():
    call_command("check", "--deploy", "--tag", "security", "--fail-level", "ERROR", stdout=None, stderr=None)


def test_deploy_check_fails_when_an_esp_is_used_without_the_secret(settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "token"}
    with pytest.raises(SystemCheckError, match="dsr.E013"):
        _deploy_check()
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "token", "WEBHOOK_SECRET": SECRET}
    from dsr.checks import tracking_webhook_check

    assert tracking_webhook_check() == []


def test_deploy_check_fails_when_the_esps_signing_key_is_missing(settings):
    from dsr.checks import tracking_webhook_check

    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    assert [m.id for m in tracking_webhook_check()] == ["dsr.E014"]
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}
    assert tracking_webhook_check() == []
    settings.EMAIL_BACKEND = "anymail.backends.mandrill.EmailBackend"
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    assert [m.id for m in tracking_webhook_check()] == ["dsr.E014"]


def test_no_check_message_when_mail_does_not_go_through_an_esp(settings):
    from dsr.checks import tracking_webhook_check

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.ANYMAIL = {}
    assert tracking_webhook_check() == []

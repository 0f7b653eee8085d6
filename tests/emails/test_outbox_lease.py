"""Claim-then-send: a short transaction claims the email row for a lease and commits, the message
goes out outside any transaction, a second one records the outcome. A redelivered task during a
live lease sends nothing; an expired lease (the worker died) is handed over again; a crash between
the ESP's acceptance and the record repeats only that message; the ESP gets the outbox id."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone

from dsr.models import EmailStatus, OutboundEmail
from dsr.services import emails as outbox
from dsr.services.emails import outbound_email_send, outbox_key, outbox_message_id, outbox_redispatch
from dsr.tasks import email_outcome_record, email_send
from tests.factories import request_create
from tests.support.esp import FakeEspApi
from tests.support.services import postgres_backend_terminate

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, no handler catches it."""


class RecordingEsp:
    """An email backend standing in for the ESP: it counts what it accepted, can run a hook while
    sending (a redelivered task, a look at the row), and can die right after accepting."""

    accepted: list = []
    during_send = None
    crash_after_accepting: set = set()

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        for message in messages:
            email_id = int(message.metadata["outbound_email_id"])
            if RecordingEsp.during_send:
                RecordingEsp.during_send(email_id)
            RecordingEsp.accepted.append(email_id)
            if email_id in RecordingEsp.crash_after_accepting:
                RecordingEsp.crash_after_accepting.discard(email_id)
                raise WorkerKilled
        return len(messages)


@pytest.fixture
def esp(settings):
    settings.EMAIL_BACKEND = f"{__name__}.RecordingEsp"
    RecordingEsp.accepted = []
    RecordingEsp.during_send = None
    RecordingEsp.crash_after_accepting = set()
    yield RecordingEsp
    RecordingEsp.during_send = None


def _queued(n=1, **kwargs):
    """n requests whose "received" emails are queued and not yet handed to a task."""
    from unittest import mock

    ids = []
    for i in range(n):
        with mock.patch.object(outbox, "email_dispatch", lambda **kwargs: True):
            r = request_create(email=f"lease{i}@example.org", **kwargs)
        ids.append(OutboundEmail.objects.get(request=r, template="received").pk)
    return ids


def _lease_runs_out(email_id):
    """Time passes beyond the claim's lease."""
    OutboundEmail.objects.filter(pk=email_id).update(lease_until=timezone.now() - timedelta(seconds=1))


def test_the_claim_is_committed_before_the_message_goes_out(transactional_db, esp):
    """Before: the row stayed locked, and the send ran inside the transaction that set it sent."""
    [email_id] = _queued()
    seen = {}

    def look(email_id):
        row = OutboundEmail.objects.get(pk=email_id)
        seen.update(
            in_transaction=connection.in_atomic_block, status=row.status, attempts=row.attempts, lease=row.lease_until
        )

    esp.during_send = look
    before = timezone.now()
    assert outbound_email_send(email_id=email_id).outcome == "sent"
    assert seen["in_transaction"] is False
    assert seen["status"] == EmailStatus.SENDING and seen["attempts"] == 1
    assert seen["lease"] >= before + timedelta(seconds=django_settings.DSR_EMAIL_LEASE_SECONDS - 5)
    row = OutboundEmail.objects.get(pk=email_id)
    assert (row.status, row.attempts, row.lease_until) == (EmailStatus.SENT, 1, None)


def test_a_redelivered_task_during_a_live_lease_does_nothing(esp):
    """Before: a task redelivered while the first one was sending sent the message again."""
    [email_id] = _queued()
    redelivered = []
    esp.during_send = lambda email_id: redelivered.append(email_send.apply(args=[email_id]).get())
    assert outbound_email_send(email_id=email_id).outcome == "sent"
    assert redelivered == ["busy"]
    assert esp.accepted == [email_id]
    assert email_send.apply(args=[email_id]).get() == "already_done"
    assert OutboundEmail.objects.get(pk=email_id).attempts == 1


def test_an_expired_lease_is_handed_over_again_and_sent(esp):
    [email_id] = _queued()
    esp.crash_after_accepting = {email_id}
    with pytest.raises(WorkerKilled):
        outbound_email_send(email_id=email_id)
    row = OutboundEmail.objects.get(pk=email_id)
    assert row.status == EmailStatus.SENDING and row.lease_until > timezone.now()
    assert outbox_redispatch() == 0  # the lease still holds: its sender may be alive
    assert email_send.apply(args=[email_id]).get() == "busy"
    _lease_runs_out(email_id)
    assert outbox_redispatch() == 1  # eager here: the handed-over task sends at once
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.SENT, 2)


def test_a_crash_between_acceptance_and_recording_repeats_only_that_message(esp):
    """Five emails; the worker dies after the ESP accepted the third. The broker redelivers every
    unacknowledged task at once: only the third is sent again, and only after its lease."""
    ids = _queued(5)
    esp.crash_after_accepting = {ids[2]}
    for email_id in ids:
        try:
            email_send.apply(args=[email_id], throw=True)
        except WorkerKilled:
            pass
    assert [email_send.apply(args=[i]).get() for i in ids] == ["already_done"] * 2 + ["busy"] + ["already_done"] * 2
    assert esp.accepted == ids  # nothing repeated yet
    _lease_runs_out(ids[2])
    assert outbox_redispatch() == 1
    assert sorted(esp.accepted) == sorted([*ids, ids[2]])
    assert set(OutboundEmail.objects.filter(pk__in=ids).values_list("status", flat=True)) == {EmailStatus.SENT}


def test_a_failed_attempt_waits_its_backoff_and_a_lost_retry_is_handed_over(settings, esp):
    """Before: only rows never tried were handed over; a retry lost with the broker waited forever."""
    [email_id] = _queued()

    def refuse(email_id):
        raise ConnectionRefusedError("ESP unreachable")

    esp.during_send = refuse
    result = outbound_email_send(email_id=email_id)
    assert (result.outcome, result.retry_in) == ("retry", 30)
    row = OutboundEmail.objects.get(pk=email_id)
    assert row.status == EmailStatus.QUEUED and row.lease_until is None
    now = timezone.now()
    assert outbox_redispatch(now=now) == 0  # its retry task is due in 30 s
    esp.during_send = None
    assert outbox_redispatch(now=now + timedelta(seconds=30 + settings.DSR_EMAIL_REDISPATCH_SECONDS + 1)) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.SENT, 2)


def test_the_final_failure_still_flags_the_request_and_tells_the_team(settings, esp, officer, mailoutbox):
    settings.DSR_EMAIL_MAX_ATTEMPTS = 2
    [email_id] = _queued()

    def refuse(email_id):
        raise ConnectionRefusedError("ESP unreachable")

    esp.during_send = refuse
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=False):
        results = [outbound_email_send(email_id=email_id) for _ in range(3)]
        for result in results:
            email_outcome_record(result)  # what the email_send task does with each
    outcomes = [result.outcome for result in results]
    assert outcomes == ["retry", "failed", "already_done"]
    row = OutboundEmail.objects.select_related("request").get(pk=email_id)
    assert row.status == EmailStatus.FAILED and row.request.flagged_at is not None
    assert OutboundEmail.objects.filter(request=row.request, template="staff_delivery_failed").count() == 1


def test_stranded_emails_are_handed_over_about_a_minute_later_and_once_per_interval(settings, monkeypatch):
    """Before: a 10-minute wait plus a 5-minute beat, about 14 minutes."""
    schedule = settings.CELERY_BEAT_SCHEDULE["outbox-redispatch"]["schedule"]
    assert schedule.total_seconds() + settings.DSR_EMAIL_REDISPATCH_SECONDS <= 75
    [email_id] = _queued()
    published = []
    monkeypatch.setattr(email_send, "delay", lambda email_id: published.append(email_id))
    created = OutboundEmail.objects.get(pk=email_id).created_at
    assert outbox_redispatch(now=created + timedelta(seconds=settings.DSR_EMAIL_REDISPATCH_SECONDS - 1)) == 0
    later = created + timedelta(seconds=settings.DSR_EMAIL_REDISPATCH_SECONDS + 1)
    assert outbox_redispatch(now=later) == 1
    assert outbox_redispatch(now=later) == 0  # handed over: not queued again within the interval
    assert outbox_redispatch(now=later + timedelta(seconds=settings.DSR_EMAIL_REDISPATCH_SECONDS + 1)) == 1
    assert published == [email_id, email_id]


def test_while_the_broker_is_down_one_failed_publish_pauses_the_others(monkeypatch):
    """Each publish to a dead broker costs up to half a second: a request queuing several emails
    pays for one; the redispatch stops at the first failure."""
    calls = []

    def broker_down(email_id):
        calls.append(email_id)
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(email_send, "delay", broker_down)
    with transaction.atomic():
        ids = _queued(3)
    for email_id in ids:
        assert outbox.email_dispatch(email_id=email_id) is False
    assert calls == ids[:1]
    assert outbox_redispatch(now=timezone.now() + timedelta(minutes=5)) == 0
    assert len(calls) == 2  # tried once more, then left for the next run


# --- What the ESP receives ------------------------------------------------------------------------


def test_the_esp_receives_the_outbox_id_and_the_same_message_id_on_every_attempt(settings):
    api = FakeEspApi.postmark(failures=1)
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "token", "POSTMARK_API_URL": api.url}
    try:
        [email_id] = _queued()
        assert outbound_email_send(email_id=email_id).outcome == "retry"
        assert outbound_email_send(email_id=email_id).outcome == "sent"
    finally:
        api.close()
    email = OutboundEmail.objects.get(pk=email_id)
    assert len(api.received) == 2
    for body in api.received:
        assert body["Metadata"] == {"outbound_email_id": str(email_id)}
        headers = {h["Name"]: h["Value"] for h in body.get("Headers", [])}
        assert headers["Message-ID"] == outbox_message_id(email)
    assert outbox_message_id(email).startswith(f"<dsr-{email_id}-") and outbox_message_id(email).endswith(
        "@example.com>"
    )


def test_brevo_gets_the_outbox_key_as_its_idempotency_key(settings):
    api = FakeEspApi(lambda body, n: {"messageId": "<brevo-1@smtp-relay.mailin.fr>"}, status=201)
    settings.EMAIL_BACKEND = "anymail.backends.brevo.EmailBackend"
    settings.ANYMAIL = {"BREVO_API_KEY": "key", "BREVO_API_URL": api.url}
    try:
        [email_id] = _queued()
        assert outbound_email_send(email_id=email_id).outcome == "sent"
    finally:
        api.close()
    email = OutboundEmail.objects.get(pk=email_id)
    [body] = api.received
    assert body["headers"]["idempotencyKey"] == outbox_key(email)
    assert body["headers"]["Message-ID"] == outbox_message_id(email)
    assert email.message_id == "<brevo-1@smtp-relay.mailin.fr>"


def test_every_email_gets_a_message_id_of_its_own(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        request_create(email="one@example.org")
        request_create(email="two@example.org")
    ids = [m.extra_headers["Message-ID"] for m in mailoutbox]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert mailoutbox[0].message()["Message-ID"] == ids[0]


# --- The database away while the outcome is recorded (real PostgreSQL) ---------------------------


@pytest.mark.postgres
def test_the_database_lost_after_the_esp_accepted_does_not_send_twice(transactional_db, esp):
    """Before: the lost connection rolled the row back to queued and the message went out again.
    Now the claim is committed, and the record is written once the database answers again."""
    [email_id] = _queued()
    esp.during_send = lambda email_id: postgres_backend_terminate()
    assert outbound_email_send(email_id=email_id).outcome == "sent"
    esp.during_send = None
    assert email_send.apply(args=[email_id]).get() == "already_done"
    assert outbox_redispatch(now=timezone.now() + timedelta(hours=1)) == 0
    assert esp.accepted == [email_id]
    row = OutboundEmail.objects.select_related("request").get(pk=email_id)
    assert row.status == EmailStatus.SENT and row.request.acknowledged_at is not None

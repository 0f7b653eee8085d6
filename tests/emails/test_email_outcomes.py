"""The outbox reports what a send did; the email_send task decides what it means for the request
(the acknowledgement of §7021(a), or a flag for an email that failed for good)."""

import pytest
from celery.exceptions import Retry
from django.db import OperationalError

from dsr.models import AuditEvent, EmailStatus, OutboundEmail
from dsr.services import delivery
from dsr.services.emails import email_to_staff, outbound_email_send
from dsr.tasks import email_send
from tests.factories import request_create

pytestmark = pytest.mark.django_db


class RefusingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("ESP unreachable")


def _acknowledgement(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        r = request_create(email="outcome@example.org")
    return r, OutboundEmail.objects.get(request=r, template="received")


def test_the_outbox_reports_and_changes_nothing_on_the_request(django_capture_on_commit_callbacks):
    r, email = _acknowledgement(django_capture_on_commit_callbacks)
    events = AuditEvent.objects.filter(request=r).count()
    result = outbound_email_send(email_id=email.pk)
    assert (result.outcome, result.email_status, result.request_id, result.template) == (
        "sent",
        EmailStatus.SENT,
        r.pk,
        "received",
    )
    r.refresh_from_db()
    assert r.acknowledged_at is None and AuditEvent.objects.filter(request=r).count() == events


def test_the_task_records_the_acknowledgement_once(django_capture_on_commit_callbacks, mailoutbox):
    r, email = _acknowledgement(django_capture_on_commit_callbacks)
    assert email_send.apply(args=[email.pk]).get() == "sent"
    assert email_send.apply(args=[email.pk]).get() == "already_done"  # a redelivery
    r.refresh_from_db()
    assert r.acknowledged_at is not None and r.ack_alert_on is None
    assert r.events.filter(event_type="acknowledged").count() == 1
    assert len(mailoutbox) == 1


def test_a_redelivered_task_completes_an_acknowledgement_a_crash_cut_short(django_capture_on_commit_callbacks):
    """The worker died after the email was recorded as sent and before the request was stamped:
    the broker redelivers the task (acks_late), which finds the email sent and stamps it."""
    r, email = _acknowledgement(django_capture_on_commit_callbacks)
    assert outbound_email_send(email_id=email.pk).outcome == "sent"  # ... and then the crash
    assert email_send.apply(args=[email.pk]).get() == "already_done"
    r.refresh_from_db()
    assert r.acknowledged_at is not None
    assert r.events.filter(event_type="acknowledged").count() == 1


def test_the_database_away_after_the_send_retries_the_acknowledgement(django_capture_on_commit_callbacks, monkeypatch):
    r, email = _acknowledgement(django_capture_on_commit_callbacks)
    record, calls = delivery.request_acknowledgement_record, []

    def away_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return record(**kwargs)

    monkeypatch.setattr("dsr.tasks.request_acknowledgement_record", away_once)
    with pytest.raises(Retry):  # the task asks to run again in OUTCOME_RETRY_SECONDS
        email_send.apply(args=[email.pk])
    r.refresh_from_db()
    assert r.acknowledged_at is None
    # The retried task finds the email sent, does not send it again, and records the acknowledgement.
    assert email_send.apply(args=[email.pk]).get() == "already_done"
    assert len(calls) == 2
    email.refresh_from_db()
    r.refresh_from_db()
    assert email.attempts == 1 and email.status == EmailStatus.SENT
    assert r.events.filter(event_type="acknowledged").count() == 1


def test_an_email_failed_for_good_flags_the_request_once_through_the_task(
    settings, officer, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    settings.DSR_EMAIL_MAX_ATTEMPTS = 1
    r, email = _acknowledgement(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        assert email_send.apply(args=[email.pk]).get() == "failed"
        assert email_send.apply(args=[email.pk]).get() == "already_done"  # a redelivery
    r.refresh_from_db()
    assert r.flagged_at is not None and "received" in r.flag_reason
    assert r.events.filter(event_type="flagged").count() == 1
    assert r.acknowledged_at is None
    assert OutboundEmail.objects.filter(request=r, template="staff_delivery_failed").count() == 1


def test_a_staff_email_that_fails_flags_nothing(settings, officer, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    settings.DSR_EMAIL_MAX_ATTEMPTS = 1
    r, _ = _acknowledgement(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        staff_email = email_to_staff(request=r, template="staff_overdue", recipients=[officer.email])[0]
        assert email_send.apply(args=[staff_email.pk]).get() == "failed"
    r.refresh_from_db()
    assert r.flagged_at is None and not r.events.filter(event_type="flagged").exists()

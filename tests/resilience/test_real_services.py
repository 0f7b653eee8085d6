"""Behaviour that depends on the real services: row locks on PostgreSQL, and a task that travels
through a real Celery worker on a real Redis. Skipped locally without them; CI runs them."""

import os
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from dsr.errors import TransitionNotAllowed
from dsr.models import AuditEvent, DataSubjectRequest, EmailStatus, OutboundEmail
from dsr.services.audit import Actor
from dsr.services.sweep import deadline_sweep
from dsr.services.staff_actions import request_verify
from tests.factories import officer_create, request_create
from tests.support.services import celery_broker, celery_worker_start, celery_worker_stop, in_threads

LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.postgres
def test_concurrent_transitions_one_wins(transactional_db):
    officer = officer_create(username="pg-officer", email="pg@company.example")
    r = request_create()
    results, errors = in_threads(4, lambda i: request_verify(request=r, actor=Actor.staff(officer), note=f"thread {i}"))
    assert len(results) == 1
    assert len(errors) == 3 and all(isinstance(e, TransitionNotAllowed) for e in errors)
    assert AuditEvent.objects.filter(request=r, event_type="verified").count() == 1
    seqs = list(AuditEvent.objects.filter(request=r).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.postgres
def test_concurrent_intake_never_repeats_a_reference(transactional_db):
    received = datetime(2026, 5, 4, 9, 0, tzinfo=LA)
    results, errors = in_threads(8, lambda i: request_create(email=f"c{i}@example.org", received_at=received).reference)
    assert errors == []
    assert len(set(results)) == 8
    # One sequence on PostgreSQL: eight consecutive numbers (another test may have drawn earlier ones).
    numbers = sorted(int(r.rsplit("-", 1)[1]) for r in results)
    assert all(r.startswith("DSR-2026-") for r in results)
    assert numbers == list(range(numbers[0], numbers[0] + 8))


@pytest.mark.postgres
def test_two_sweeps_at_once_fire_each_timer_once(transactional_db):
    officer_create(username="pg-officer2", email="pg2@company.example")
    for i in range(30):
        request_create(email=f"s{i}@example.org", received_at=datetime(2026, 1, 5, 9, 0, tzinfo=LA))
    results, errors = in_threads(2, lambda i: deadline_sweep(today=date(2026, 3, 1)))
    assert errors == []
    fired = [f for report in results for f in report.fired]
    # The acknowledgements went out at commit, so only the overdue timer is due: once per request.
    assert len(fired) == len(set(fired)) == 30
    assert {timer for _, timer in fired} == {"overdue"}
    assert AuditEvent.objects.filter(event_type="overdue").count() == 30
    assert OutboundEmail.objects.filter(template="staff_overdue").count() == 30


@pytest.mark.postgres
@pytest.mark.redis
def test_email_goes_through_a_real_celery_worker_on_redis(transactional_db, tmp_path):
    worker = celery_worker_start(redis_url=os.environ["REDIS_URL"], var_dir=tmp_path)
    try:
        with celery_broker(os.environ["REDIS_URL"]):
            r = request_create(email="worker@example.org")  # transactional_db: commits, so on_commit fires
            email = OutboundEmail.objects.get(request=r)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                email.refresh_from_db()
                if email.status == EmailStatus.SENT:
                    break
                time.sleep(0.3)
            assert email.status == EmailStatus.SENT, "the worker did not send the email in time"
            files = list((tmp_path / "mail").glob("*.log"))
            assert len(files) == 1 and "worker@example.org" in files[0].read_text()
            r.refresh_from_db()
            assert r.acknowledged_at is not None
            assert DataSubjectRequest.objects.get(pk=r.pk).events.filter(event_type="acknowledged").count() == 1
    finally:
        celery_worker_stop(worker)

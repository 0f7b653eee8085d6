"""The deadline sweep over a frozen calendar: each timer fires once, on its day."""

from datetime import date, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from dsr.models import AuditEvent, DataSubjectRequest
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_cancel, request_verify
from dsr.services.sweep import deadline_sweep
from tests.factories import request_create

pytestmark = pytest.mark.django_db
LA = ZoneInfo("America/Los_Angeles")


def _received(y, m, d):
    return datetime(y, m, d, 10, 0, tzinfo=LA)


def test_sweep_walks_a_request_from_receipt_past_its_deadline(officer, django_capture_on_commit_callbacks, mailoutbox):
    # Received 2 March 2026 and never acknowledged (the receipt email never went out: no commit run).
    r = request_create(regime="ccpa", received_at=_received(2026, 3, 2))
    assert r.respond_by == date(2026, 4, 16)
    day = date(2026, 3, 2)
    fired = []
    while day <= date(2026, 4, 20):
        with django_capture_on_commit_callbacks(execute=False):
            report = deadline_sweep(today=day)
        fired += [(day, timer) for _, timer in report.fired]
        day += timedelta(days=1)
    assert fired == [
        (date(2026, 3, 4), "acknowledgement_due"),
        (date(2026, 4, 9), "response_due_soon"),
        (date(2026, 4, 17), "overdue"),
    ]
    r.refresh_from_db()
    assert r.overdue_since == date(2026, 4, 16)
    events = list(
        r.events.filter(
            actor_type="system", event_type__in=["acknowledgement_due", "response_due_soon", "overdue"]
        ).values_list("event_type", flat=True)
    )
    assert events == ["acknowledgement_due", "response_due_soon", "overdue"]
    assert r.emails.filter(template="staff_overdue", to="olivia@company.example").count() == 1


def test_second_sweep_does_nothing(officer):
    for i in range(5):
        request_create(email=f"p{i}@example.org", received_at=_received(2026, 1, 5))
    first = deadline_sweep(today=date(2026, 3, 1))
    events = AuditEvent.objects.count()
    second = deadline_sweep(today=date(2026, 3, 1))
    # Overdue by 1 March: the acknowledgement alert and the overdue flag fire; the reminder is
    # suppressed because the deadline has already passed.
    assert len(first.fired) == 10
    assert second.fired == []
    assert AuditEvent.objects.count() == events


def test_reminder_is_skipped_when_already_overdue(officer):
    r = request_create(received_at=_received(2026, 1, 5))
    report = deadline_sweep(today=date(2026, 3, 1))
    assert (r.reference, "response_due_soon") not in report.fired
    assert (r.reference, "overdue") in report.fired


def test_closed_requests_are_never_swept(officer):
    r = request_create(received_at=_received(2026, 1, 5))
    request_cancel(request=r, actor=Actor.staff(officer), reason="Withdrawn by phone")
    assert deadline_sweep(today=date(2026, 3, 1)).fired == []


def test_moving_between_open_statuses_does_not_refire_a_timer(officer):
    r = request_create(received_at=_received(2026, 3, 2))
    assert [t for _, t in deadline_sweep(today=date(2026, 4, 10)).fired] == ["acknowledgement_due", "response_due_soon"]
    request_verify(request=r, actor=Actor.staff(officer), note="ok")
    assert deadline_sweep(today=date(2026, 4, 11)).fired == []


def test_sweep_command_prints_what_it_did(officer):
    r = request_create(received_at=_received(2026, 1, 5))
    out = StringIO()
    call_command("dsr_sweep", "--today", "2026-03-01", stdout=out)
    text = out.getvalue()
    assert f"{r.reference}: overdue" in text
    assert "Sweep for 2026-03-01: 2 timers fired" in text
    out = StringIO()
    call_command("dsr_sweep", "--today", "2026-03-01", stdout=out)
    assert "0 timers fired" in out.getvalue()


def test_sweep_command_rejects_a_bad_date(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--today must be a date"):
        call_command("dsr_sweep", "--today", "yesterday")


def test_sweep_query_count_is_flat(officer, django_assert_max_num_queries):
    for i in range(20):
        request_create(email=f"x{i}@example.org", received_at=_received(2026, 4, 1))
    # Nothing due on 2 April: the sweep reads one empty index range per timer and nothing else.
    from dsr.services.sweep import TIMERS

    with django_assert_max_num_queries(len(TIMERS)):
        assert deadline_sweep(today=date(2026, 4, 2)).fired == []

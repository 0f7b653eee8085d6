"""The state machine and the one door: every change audited, illegal moves change nothing."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from dsr.deadlines import business_today
from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.models import AuditEvent, DataSubjectRequest, OutboundEmail, Status
from dsr.services.audit import Actor
from dsr.services.clock_events import request_extend
from dsr.services.events import event_approved
from dsr.services.intake import request_requester_reply
from dsr.services.staff_actions import (
    request_approve,
    request_cancel,
    request_complete,
    request_deny,
    request_information_ask,
    request_reopen,
    request_verify,
)
from dsr.services.transitions import TRANSITIONS, request_transition
from tests.factories import request_create

pytestmark = pytest.mark.django_db

LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def staff(officer):
    return Actor.staff(officer)


def test_submission_records_received_then_awaiting_verification(django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(request_type="erasure", regime="ccpa")
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION
    assert r.reference.startswith(f"DSR-{timezone.now().astimezone(LA).year}-")
    assert len(r.public_token) >= 40 and r.public_token not in r.reference
    assert list(r.events.values_list("event_type", "from_status", "to_status")) == [
        ("received", "", "received"),
        ("verification_started", "received", "awaiting_verification"),
        ("acknowledged", "", ""),
    ]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["person@example.org"]
    assert r.reference in mailoutbox[0].subject
    assert f"/r/{r.public_token}/" in mailoutbox[0].body
    assert r.acknowledged_at is not None and r.ack_alert_on is None


def test_opt_out_needs_no_verification(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(request_type="opt_out_sale", regime="ccpa")
    r.refresh_from_db()
    assert r.status == Status.IN_PROGRESS
    assert r.events.filter(event_type="verification_not_required").exists()
    assert r.acknowledge_by is None


def test_references_name_the_year_of_receipt_and_rise():
    received = datetime(2026, 3, 2, 17, 0, tzinfo=LA)
    a = request_create(received_at=received)
    b = request_create(received_at=received)
    old = request_create(received_at=datetime(2025, 12, 31, 23, 30, tzinfo=LA))
    assert a.reference.startswith("DSR-2026-") and old.reference.startswith("DSR-2025-")
    assert int(b.reference.rsplit("-", 1)[1]) == int(a.reference.rsplit("-", 1)[1]) + 1
    if connection.vendor == "postgresql":  # one sequence: the numbers keep rising across years
        assert int(old.reference.rsplit("-", 1)[1]) == int(b.reference.rsplit("-", 1)[1]) + 1
    else:  # SQLite: the year's counter row
        assert old.reference == "DSR-2025-000001"


def test_deadlines_are_computed_in_the_business_time_zone():
    # 2026-03-06 07:30 UTC is still 5 March in California: the clock starts on 5 March.
    r = request_create(regime="ccpa", received_at=datetime(2026, 3, 6, 7, 30, tzinfo=ZoneInfo("UTC")))
    assert r.original_respond_by == date(2026, 3, 5) + timedelta(days=45)
    assert r.respond_by == r.original_respond_by
    assert r.acknowledge_by == date(2026, 3, 19)  # 10 business days after Thu 5 March


def test_gdpr_month_rolls_off_the_weekend():
    # Received Friday 6 November 2026: one month is Sunday 6 December, so Monday 7 December.
    r = request_create(regime="gdpr", received_at=datetime(2026, 11, 6, 12, 0, tzinfo=LA))
    assert r.respond_by == date(2026, 12, 7)
    assert r.acknowledge_by is None


def test_full_walk_to_completion(staff, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create()
    with django_capture_on_commit_callbacks(execute=True):
        r = request_verify(request=r, actor=staff, note="matched 2 data points")
        r = request_approve(request=r, actor=staff)
        r = request_complete(request=r, actor=staff, message="Here is what we hold.")
    r.refresh_from_db()
    assert r.status == Status.COMPLETED and r.outcome == "complied" and r.closed_at
    assert r.verified_at is not None
    assert (r.ack_alert_on, r.remind_on, r.overdue_on) == (None, None, None)
    types = list(r.events.values_list("event_type", flat=True))
    assert types == ["received", "verification_started", "acknowledged", "verified", "approved", "completed"]
    staff_event = r.events.get(event_type="verified")
    assert staff_event.actor_type == "staff" and staff_event.actor_label == "olivia"
    assert staff_event.data == {"method": "manual", "note": "matched 2 data points"}
    assert list(r.emails.values_list("template", flat=True)) == ["received", "verified", "approved", "completed"]
    assert len(mailoutbox) == 4 and all(m.to == ["person@example.org"] for m in mailoutbox)
    assert "Here is what we hold." in mailoutbox[-1].body


def _snapshot(r):
    r.refresh_from_db()
    return (
        r.status,
        r.updated_at,
        AuditEvent.objects.filter(request=r).count(),
        OutboundEmail.objects.filter(request=r).count(),
    )


@pytest.mark.parametrize("action", ["complete", "approve"])
def test_illegal_transition_changes_nothing(staff, action, django_capture_on_commit_callbacks, mailoutbox):
    r = request_create()  # awaiting verification: cannot be completed or approved yet
    before = _snapshot(r)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(TransitionNotAllowed) as err:
            if action == "complete":
                request_complete(request=r, actor=staff, message="done")
            else:
                request_approve(request=r, actor=staff)
    assert r.reference in str(err.value) and "cannot become" in str(err.value)
    assert _snapshot(r) == before
    assert mailoutbox == []


def test_closed_request_refuses_everything_but_reopen(staff):
    r = request_create()
    r = request_deny(request=r, actor=staff, reason_category="unverifiable", message="No match.")
    for attempt in (
        lambda: request_verify(request=r, actor=staff),
        lambda: request_complete(request=r, actor=staff, message="x"),
        lambda: request_cancel(request=r, actor=staff, reason="x"),
        lambda: request_extend(request=r, actor=staff, reason="x"),
    ):
        before = _snapshot(r)
        with pytest.raises(TransitionNotAllowed):
            attempt()
        assert _snapshot(r) == before
    r = request_reopen(request=r, actor=staff, reason="New evidence arrived")
    assert r.status == Status.AWAITING_VERIFICATION
    assert r.outcome == "" and r.denial_reason == "" and r.closed_at is None
    assert r.remind_on is not None and r.overdue_on is not None


def test_deny_requires_category_and_message(staff):
    r = request_create()
    before = _snapshot(r)
    with pytest.raises(InvalidInput) as err:
        request_deny(request=r, actor=staff, reason_category="because", message="x")
    assert err.value.field == "reason_category"
    with pytest.raises(InvalidInput) as err:
        request_deny(request=r, actor=staff, reason_category="exempt", message="  ")
    assert err.value.field == "message"
    assert _snapshot(r) == before


def test_gdpr_denial_email_states_the_right_to_complain(staff, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(regime="gdpr")
        request_deny(request=r, actor=staff, reason_category="manifestly_unfounded", message="Repeated request.")
    assert "supervisory authority" in mailoutbox[-1].body and "judicial remedy" in mailoutbox[-1].body
    assert "Repeated request." in mailoutbox[-1].body


def test_every_status_has_a_row_in_the_transition_table():
    assert set(TRANSITIONS) == set(Status.values)
    for targets in TRANSITIONS.values():
        assert targets <= set(Status.values)


def test_extension_ccpa_once_with_reason(staff, django_capture_on_commit_callbacks, mailoutbox):
    r = request_create(regime="ccpa")
    original = r.respond_by
    with django_capture_on_commit_callbacks(execute=True):
        r = request_extend(request=r, actor=staff, reason="Data spread over five systems")
    assert r.respond_by == original + timedelta(days=45)
    assert r.original_respond_by == original and r.is_extended
    assert r.overdue_on == r.respond_by + timedelta(days=1)
    ev = r.events.get(event_type="extended")
    assert ev.data["reason"] == "Data spread over five systems"
    assert ev.data["respond_by_was"] == original.isoformat()
    assert "five systems" in mailoutbox[-1].body
    before = _snapshot(r)
    with pytest.raises(TransitionNotAllowed):
        request_extend(request=r, actor=staff, reason="again")
    assert _snapshot(r) == before


def test_extension_refused_after_the_original_deadline(staff):
    r = request_create(regime="gdpr", received_at=timezone.now() - timedelta(days=40))
    before = _snapshot(r)
    with pytest.raises(TransitionNotAllowed) as err:
        request_extend(request=r, actor=staff, reason="Too late")
    assert "passed" in str(err.value)
    assert _snapshot(r) == before


def test_extension_gdpr_two_more_months(staff, time_machine):
    # Today is frozen inside the request's first month, when an extension is still allowed.
    time_machine.move_to(datetime(2026, 11, 20, 12, 0, tzinfo=LA), tick=False)
    r = request_create(regime="gdpr", received_at=datetime(2026, 11, 2, 10, 0, tzinfo=LA))
    assert business_today() == date(2026, 11, 20) and r.original_respond_by == date(2026, 12, 2)
    r = request_extend(request=r, actor=staff, reason="Complex")
    # Received Monday 2 November 2026: one month is Wednesday 2 December, three are Tuesday 2 February.
    assert (r.respond_by, r.original_respond_by, r.is_extended) == (date(2027, 2, 2), date(2026, 12, 2), True)
    assert r.events.get(event_type="extended").data["respond_by_was"] == "2026-12-02"


def test_received_at_in_the_future_or_naive_is_refused():
    with pytest.raises(InvalidInput) as err:
        request_create(received_at=timezone.now() + timedelta(days=1))
    assert err.value.field == "received_at"
    with pytest.raises(InvalidInput):
        request_create(received_at=datetime(2026, 1, 1, 12, 0))
    assert DataSubjectRequest.objects.count() == 0


def test_gdpr_pause_shifts_the_deadline_only_when_enabled(staff, settings):
    settings.DSR_GDPR_PAUSE_ENABLED = True
    # Received Monday 2 November 2026: due Wednesday 2 December.
    r = request_create(regime="gdpr", received_at=datetime(2026, 11, 2, 9, 0, tzinfo=LA))
    assert r.respond_by == date(2026, 12, 2)
    r = request_information_ask(request=r, actor=staff, message="Please send your customer number", for_identity=True)
    assert r.status == Status.AWAITING_REQUESTER
    assert r.pauses.filter(ended_at__isnull=True).count() == 1
    # The requester answers two days later.
    pause = r.pauses.get()
    pause.started_on = pause.started_on - timedelta(days=2)
    pause.save(update_fields=["started_on"])
    r = request_requester_reply(request=r, message="It is 12345")
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION
    assert r.paused_days == 2
    assert r.respond_by == date(2026, 12, 4)
    assert r.original_respond_by == date(2026, 12, 2)
    assert r.events.filter(event_type="clock_resumed").exists()


def test_ccpa_clock_never_pauses(staff, settings):
    settings.DSR_GDPR_PAUSE_ENABLED = True
    r = request_create(regime="ccpa")
    due = r.respond_by
    r = request_information_ask(request=r, actor=staff, message="Which account?", for_identity=True)
    assert r.pauses.count() == 0
    r = request_requester_reply(request=r, message="The old one")
    r.refresh_from_db()
    assert r.respond_by == due and r.paused_days == 0


def _refused(call, r, mailoutbox, django_capture_on_commit_callbacks):
    before = _snapshot(r)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(TransitionNotAllowed) as err:
            call()
    assert _snapshot(r) == before and mailoutbox == []
    return str(err.value)


@pytest.mark.parametrize("close", ["cancel", "deny"])
def test_a_closed_unverified_request_cannot_be_approved_or_completed(
    staff, close, django_capture_on_commit_callbacks, mailoutbox
):
    r = request_create()
    if close == "cancel":
        r = request_cancel(request=r, actor=staff, reason="Withdrawn by phone")
    else:
        r = request_deny(request=r, actor=staff, reason_category="unverifiable", message="No match.")
    message = _refused(
        lambda: request_approve(request=r, actor=staff), r, mailoutbox, django_capture_on_commit_callbacks
    )
    assert r.reference in message
    # The one door itself refuses work on an unverified request, although the table lets a closed
    # request go back to in progress (for a reopened verified one).
    assert Status.IN_PROGRESS in TRANSITIONS[r.status]
    message = _refused(
        lambda: request_transition(request=r, to_status=Status.IN_PROGRESS, event=event_approved(actor=staff, note="")),
        r,
        mailoutbox,
        django_capture_on_commit_callbacks,
    )
    assert "not verified" in message
    r.refresh_from_db()
    assert r.verified_at is None and r.status != Status.COMPLETED


def test_approve_only_from_verified(staff, django_capture_on_commit_callbacks, mailoutbox):
    r = request_verify(request=request_create(), actor=staff, note="ok")
    r = request_information_ask(request=r, actor=staff, message="Which account?")
    _refused(lambda: request_approve(request=r, actor=staff), r, mailoutbox, django_capture_on_commit_callbacks)
    r = request_requester_reply(request=r, message="The old one")
    assert r.status == Status.IN_PROGRESS  # back to work: it was verified before the question
    _refused(lambda: request_approve(request=r, actor=staff), r, mailoutbox, django_capture_on_commit_callbacks)


@pytest.mark.parametrize("status", ["awaiting_verification", "verified", "in_progress", "awaiting_requester"])
def test_reopen_refuses_an_open_request(staff, status, django_capture_on_commit_callbacks, mailoutbox):
    r = request_create()
    if status != "awaiting_verification":
        r = request_verify(request=r, actor=staff, note="ok")
    if status == "in_progress":
        r = request_approve(request=r, actor=staff)
    if status == "awaiting_requester":
        r = request_information_ask(request=r, actor=staff, message="Which account?")
    assert r.status == status
    message = _refused(
        lambda: request_reopen(request=r, actor=staff, reason="Reopen"),
        r,
        mailoutbox,
        django_capture_on_commit_callbacks,
    )
    assert "only a closed request" in message


def test_reopening_a_verified_closed_request_resumes_work(staff, django_capture_on_commit_callbacks, mailoutbox):
    r = request_verify(request=request_create(), actor=staff, note="ok")
    r = request_complete(request=r, actor=staff, message="Done.")
    with django_capture_on_commit_callbacks(execute=True):
        r = request_reopen(request=r, actor=staff, reason="The requester found more accounts")
    assert r.status == Status.IN_PROGRESS and r.verified_at is not None
    assert mailoutbox[-1].to == [r.email] and "found more accounts" in mailoutbox[-1].body

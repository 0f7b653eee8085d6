"""The deadline sweep: a periodic pass over the indexed due dates of open requests. Each timer
that fires is recorded once, as an event on the request's timeline, and its due date is cleared in
the same transaction; two sweeps at once, or a sweep after a crash, never repeat one."""

from dataclasses import dataclass, field
from datetime import date

from django.db import connection, transaction

from dsr.deadlines import business_today
from dsr.models import OPEN_STATUSES, DataSubjectRequest, Status
from dsr.services.audit import Actor, audit_event_record
from dsr.services.emails import email_to_staff, staff_recipients
from dsr.services.events import SWEEP, event_acknowledgement_due, event_overdue, event_response_due_soon
from dsr.services.verification import challenge_resend, verification_expire


@dataclass
class SweepReport:
    today: date
    fired: list[tuple[str, str]] = field(default_factory=list)  # (reference, timer)

    def count(self, timer: str) -> int:
        return sum(1 for _, t in self.fired if t == timer)


def _locked_if_due(request_id: int, due_field: str, today: date):
    qs = DataSubjectRequest.objects.filter(pk=request_id, **{f"{due_field}__lte": today})
    if connection.features.has_select_for_update_skip_locked:
        # A concurrent sweep holding this row will record the timer itself.
        return qs.select_for_update(skip_locked=True).first()
    return qs.select_for_update().first()


def _fire_acknowledgement_due(request: DataSubjectRequest, today: date, recipients: list[str]) -> bool:
    request.ack_alert_on = None
    request.save(update_fields=["ack_alert_on", "updated_at"])
    if request.acknowledged_at or request.status not in OPEN_STATUSES:
        return False
    audit_event_record(
        request=request, event=event_acknowledgement_due(acknowledge_by=request.acknowledge_by, today=today)
    )
    email_to_staff(request=request, template="staff_acknowledgement_due", recipients=recipients)
    return True


def _fire_response_due_soon(request: DataSubjectRequest, today: date, recipients: list[str]) -> bool:
    request.remind_on = None
    request.save(update_fields=["remind_on", "updated_at"])
    if request.status not in OPEN_STATUSES or request.respond_by < today:
        return False  # already overdue: the overdue timer speaks instead
    days_left = (request.respond_by - today).days
    audit_event_record(
        request=request, event=event_response_due_soon(respond_by=request.respond_by, days_left=days_left)
    )
    email_to_staff(request=request, template="staff_due_soon", recipients=recipients, context={"days_left": days_left})
    return True


def _fire_overdue(request: DataSubjectRequest, today: date, recipients: list[str]) -> bool:
    request.overdue_on = None
    if request.status not in OPEN_STATUSES or request.respond_by >= today:
        request.save(update_fields=["overdue_on", "updated_at"])
        return False
    request.overdue_since = request.respond_by
    request.save(update_fields=["overdue_on", "overdue_since", "updated_at"])
    audit_event_record(
        request=request,
        event=event_overdue(respond_by=request.respond_by, days_late=(today - request.respond_by).days),
    )
    email_to_staff(request=request, template="staff_overdue", recipients=recipients)
    return True


def _fire_verification_reminder(request: DataSubjectRequest, today: date, recipients: list[str]) -> bool:
    request.verify_remind_on = None
    request.save(update_fields=["verify_remind_on", "updated_at"])
    if request.status != Status.AWAITING_VERIFICATION or request.email_verified_at:
        return False
    challenge_resend(request=request, template="verify_reminder", actor=Actor.system(SWEEP))
    return True


def _fire_verification_expired(request: DataSubjectRequest, today: date, recipients: list[str]) -> bool:
    if request.status not in (Status.AWAITING_VERIFICATION, Status.AWAITING_REQUESTER) or request.verified_at:
        request.verify_expire_on = None
        request.save(update_fields=["verify_expire_on", "updated_at"])
        return False
    verification_expire(request=request)  # closing clears every timer of the request
    return True


TIMERS = (
    ("verification_reminder", "verify_remind_on", _fire_verification_reminder),
    ("verification_expired", "verify_expire_on", _fire_verification_expired),
    ("acknowledgement_due", "ack_alert_on", _fire_acknowledgement_due),
    ("response_due_soon", "remind_on", _fire_response_due_soon),
    ("overdue", "overdue_on", _fire_overdue),
)


def deadline_sweep(*, today: date | None = None) -> SweepReport:
    """Fire every timer whose day has come. Reads only rows whose due date is today or earlier."""
    today = today or business_today()
    report = SweepReport(today=today)
    recipients = None
    for timer, due_field, fire in TIMERS:
        # Only rows whose date has come, read through the partial index on that date; no ORDER BY,
        # which could make the planner walk the primary key over every open request instead.
        due = DataSubjectRequest.objects.filter(**{f"{due_field}__lte": today}).order_by()
        due_ids = list(due.values_list("pk", flat=True))
        for request_id in due_ids:
            with transaction.atomic():
                request = _locked_if_due(request_id, due_field, today)
                if request is None:
                    continue
                if recipients is None:
                    recipients = staff_recipients()
                if fire(request, today, recipients):
                    report.fired.append((request.reference, timer))
    return report

"""The legal clock (dsr.clock, pure) applied to this business's settings: today in its time zone,
a request's deadlines under its holiday calendars, and the due dates the deadline sweep reads.
No ORM: the timer functions set fields on the request; the service that called them saves it."""

from datetime import date, timedelta

from django.conf import settings
from django.utils import timezone

from dsr import clock
from dsr.models import DataSubjectRequest, Status

ACK_ALERT_DAYS = 2  # alert the team if the acknowledgement has not gone out two days after receipt
MIN_DAYS_TO_VERIFY = 7

# The sweep's due dates: every save that moves them names these fields.
TIMER_FIELDS = ["ack_alert_on", "remind_on", "overdue_on", "overdue_since", "verify_remind_on", "verify_expire_on"]


def business_today() -> date:
    return clock.local_date(timezone.now(), settings.DSR_TIME_ZONE)


def deadlines_for(*, regime: str, request_type: str, received_on: date, extended: bool = False, paused_days: int = 0):
    return clock.deadlines_compute(
        regime=regime,
        request_type=request_type,
        received_on=received_on,
        ccpa_calendar=clock.calendar_for(settings.DSR_CCPA_HOLIDAYS),
        gdpr_calendar=clock.calendar_for(settings.DSR_GDPR_HOLIDAYS),
        extended=extended,
        paused_days=paused_days,
    )


def timers_arm(request: DataSubjectRequest) -> None:
    """Set the sweep's due dates from the deadlines in force. Called at receipt, when a recorded
    event moves the deadline, and on reopening; moves between open statuses leave them alone, so a
    timer that has fired does not fire again."""
    if request.acknowledge_by and not request.acknowledged_at:
        received_on = clock.local_date(request.received_at, settings.DSR_TIME_ZONE)
        request.ack_alert_on = min(received_on + timedelta(days=ACK_ALERT_DAYS), request.acknowledge_by)
    else:
        request.ack_alert_on = None
    request.remind_on = request.respond_by - timedelta(days=settings.DSR_REMINDER_DAYS)
    request.overdue_on = request.respond_by + timedelta(days=1)
    if request.overdue_since and request.respond_by >= business_today():
        request.overdue_since = None


def timers_clear(request: DataSubjectRequest) -> None:
    request.ack_alert_on = request.remind_on = request.overdue_on = None
    request.verify_remind_on = request.verify_expire_on = None


def verification_timers_set(request: DataSubjectRequest, to_status: str) -> None:
    """Waiting for identity: remind the requester after a few days, and close the request as
    unverifiable after a configurable period — never later than its deadline (CCPA: deny at day
    45 at the latest), yet never sooner than a week, even for a request recorded late."""
    if to_status == Status.AWAITING_VERIFICATION:
        if request.verify_expire_on is None:
            today = business_today()
            request.verify_remind_on = today + timedelta(days=settings.DSR_VERIFY_REMIND_DAYS)
            expire = min(today + timedelta(days=settings.DSR_VERIFY_EXPIRE_DAYS), request.respond_by)
            request.verify_expire_on = max(expire, today + timedelta(days=MIN_DAYS_TO_VERIFY))
    elif to_status != Status.AWAITING_REQUESTER:
        request.verify_remind_on = request.verify_expire_on = None

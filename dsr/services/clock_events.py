"""The recorded events that move a request's deadline — and the only things that ever do: an
extension (CCPA §1798.130(a)(2)(A), GDPR Art 12(3)) and a pause of the GDPR clock while waiting
for identity information (EDPB ¶159, off by default). The arithmetic is in dsr.clock."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dsr import clock
from dsr.deadlines import TIMER_FIELDS, business_today, deadlines_for, timers_arm
from dsr.errors import TransitionNotAllowed
from dsr.models import CLOSED_STATUSES, ClockPause, DataSubjectRequest, Regime
from dsr.services.audit import Actor, audit_event_record
from dsr.services.emails import email_to_requester
from dsr.services.events import event_clock_resumed, event_extended
from dsr.services.transitions import request_locked
from dsr.validators import text_required


def clock_pause_allowed(request: DataSubjectRequest, *, for_identity: bool) -> bool:
    # EDPB ¶159 (check): only GDPR, only for identity information, only when the business opts in.
    # CCPA §7021(b): the 45 days never pause.
    return settings.DSR_GDPR_PAUSE_ENABLED and for_identity and request.regime == Regime.GDPR


def clock_pause_start(request: DataSubjectRequest) -> ClockPause:
    """The team asked for identity information: the clock stops today. The caller holds the
    request's lock and has checked `clock_pause_allowed`."""
    now = timezone.now()
    return ClockPause.objects.create(
        request=request, started_at=now, started_on=clock.local_date(now, settings.DSR_TIME_ZONE)
    )


def clock_pause_end(request: DataSubjectRequest) -> None:
    """The requester answered: an open pause ends, and the deadline moves by the days paused. The
    caller holds the request's lock."""
    pause = ClockPause.objects.filter(request=request, ended_at__isnull=True).first()
    if not pause:
        return
    now = timezone.now()
    pause.ended_at = now
    pause.ended_on = clock.local_date(now, settings.DSR_TIME_ZONE)
    pause.save(update_fields=["ended_at", "ended_on"])
    paused = (pause.ended_on - pause.started_on).days
    old = _deadline_recompute(request, paused_days=request.paused_days + paused)
    audit_event_record(
        request=request,
        event=event_clock_resumed(
            paused_from=pause.started_on,
            paused_to=pause.ended_on,
            days=paused,
            respond_by_was=old,
            respond_by=request.respond_by,
        ),
    )


def _deadline_recompute(request: DataSubjectRequest, *, paused_days: int):
    """The deadline with `paused_days` in force, saved with the timers; returns the one it replaced."""
    received_on = clock.local_date(request.received_at, settings.DSR_TIME_ZONE)
    deadlines = deadlines_for(
        regime=request.regime,
        request_type=request.request_type,
        received_on=received_on,
        extended=request.is_extended,
        paused_days=paused_days,
    )
    old = request.respond_by
    request.paused_days = paused_days
    request.respond_by = deadlines.respond_by
    timers_arm(request)
    request.save(update_fields=["paused_days", "respond_by", "updated_at", *TIMER_FIELDS])
    return old


def extension_refusal(request: DataSubjectRequest) -> str | None:
    """Why `request_extend` refuses to extend `request`'s deadline today, whatever the reason given
    (None: it extends). The door's own guard; the dashboard reads it to offer only what would work."""
    if request.status in CLOSED_STATUSES:
        return f"{request.reference} is closed; its deadline cannot be extended."
    try:
        clock.extension_possible_check(
            regime=request.regime,
            request_type=request.request_type,
            today=business_today(),
            original_respond_by=request.original_respond_by,
            already_extended=request.is_extended,
        )
    except clock.ClockError as exc:
        return f"{request.reference}: {exc}"
    return None


@transaction.atomic
def request_extend(*, request: DataSubjectRequest, actor: Actor, reason: str) -> DataSubjectRequest:
    """CCPA §1798.130(a)(2)(A): once, up to 45 more days, noticed before day 45.
    GDPR Art 12(3): two further months, the subject told within the first month."""
    reason = text_required(reason, "reason", "A reason for the extension")
    locked = request_locked(request.pk)
    refusal = extension_refusal(locked)
    if refusal is not None:
        raise TransitionNotAllowed(refusal)
    received_on = clock.local_date(locked.received_at, settings.DSR_TIME_ZONE)
    deadlines = deadlines_for(
        regime=locked.regime,
        request_type=locked.request_type,
        received_on=received_on,
        extended=True,
        paused_days=locked.paused_days,
    )
    old = locked.respond_by
    locked.respond_by = deadlines.respond_by
    locked.extended_at = timezone.now()
    locked.extension_reason = reason
    timers_arm(locked)
    locked.save(update_fields=["respond_by", "extended_at", "extension_reason", "updated_at", *TIMER_FIELDS])
    audit_event_record(
        request=locked,
        event=event_extended(actor=actor, reason=reason, respond_by_was=old, respond_by=locked.respond_by),
    )
    email_to_requester(request=locked, template="extended", context={"reason": reason, "previous_deadline": old})
    return locked

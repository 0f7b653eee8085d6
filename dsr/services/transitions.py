"""The one door every status change goes through. `request_transition` locks the row, checks the
move against `TRANSITIONS` (and an action's own starting states), refuses work on an unverified
request, writes the audit event and queues the requester's email for after commit. The web form,
the dashboard, the API, the admin and the tasks all reach it through the services."""

from django.db import transaction
from django.utils import timezone

from dsr import hooks
from dsr.deadlines import TIMER_FIELDS, timers_arm, timers_clear, verification_timers_set
from dsr.errors import TransitionNotAllowed
from dsr.models import CLOSED_STATUSES, TYPES_WITHOUT_VERIFICATION, DataSubjectRequest, Status
from dsr.services.audit import Event, audit_event_record
from dsr.services.documents import identity_documents_purge
from dsr.services.emails import email_to_requester

S = Status

# The state machine drawn in the README. Closed requests can only be reopened.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.AWAITING_VERIFICATION, S.VERIFIED, S.IN_PROGRESS, S.DENIED, S.CANCELLED, S.FORWARDED}),
    S.AWAITING_VERIFICATION: frozenset({S.VERIFIED, S.AWAITING_REQUESTER, S.DENIED, S.CANCELLED}),
    S.VERIFIED: frozenset({S.IN_PROGRESS, S.AWAITING_REQUESTER, S.COMPLETED, S.DENIED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.AWAITING_REQUESTER, S.COMPLETED, S.DENIED, S.CANCELLED}),
    S.AWAITING_REQUESTER: frozenset({S.AWAITING_VERIFICATION, S.VERIFIED, S.IN_PROGRESS, S.DENIED, S.CANCELLED}),
    S.COMPLETED: frozenset({S.IN_PROGRESS}),
    S.DENIED: frozenset({S.AWAITING_VERIFICATION, S.IN_PROGRESS}),
    S.CANCELLED: frozenset({S.AWAITING_VERIFICATION, S.IN_PROGRESS}),
    S.FORWARDED: frozenset({S.AWAITING_VERIFICATION, S.IN_PROGRESS}),
}

# A request in these states is being (or has been) worked on: its identity must have been verified
# first, unless its type needs no verification (§7060(b), §7027).
VERIFIED_STATUSES = frozenset({S.VERIFIED, S.IN_PROGRESS, S.COMPLETED})


def request_locked(request_id: int) -> DataSubjectRequest:
    """The only place that takes a request's row lock."""
    return DataSubjectRequest.objects.select_for_update().get(pk=request_id)


@transaction.atomic
def request_transition(
    *,
    request: DataSubjectRequest,
    to_status: str,
    event: Event,
    changes: dict | None = None,
    email_template: str | None = None,
    email_context: dict | None = None,
    from_statuses: frozenset[str] | None = None,
) -> DataSubjectRequest:
    """Move a request to `to_status`: lock, check, update, record `event` with the move, queue the
    requester's email. `from_statuses` narrows the table for one action (approve only a verified request).
    Raises TransitionNotAllowed and changes nothing when the move is not allowed."""
    locked = request_locked(request.pk)
    from_status = locked.status
    if from_statuses is not None and from_status not in from_statuses:
        allowed = " or ".join(sorted(Status(s).label.lower() for s in from_statuses))
        raise TransitionNotAllowed(
            f"{locked.reference} is {locked.get_status_display().lower()}; it cannot become "
            f"{Status(to_status).label.lower()} this way, only when it is {allowed}."
        )
    if to_status not in TRANSITIONS[from_status]:
        raise TransitionNotAllowed(
            f"{locked.reference} is {locked.get_status_display().lower()}; it cannot become "
            f"{Status(to_status).label.lower()}."
        )
    changes = dict(changes or {})
    verified_at = changes.get("verified_at", locked.verified_at)
    if to_status in VERIFIED_STATUSES and locked.request_type not in TYPES_WITHOUT_VERIFICATION and not verified_at:
        # RULES.md §3 (§7060, Art 12(6)): no work on a request whose identity was never verified,
        # whichever path asks for it (approve after cancel, reopen, a reply, the admin).
        raise TransitionNotAllowed(
            f"{locked.reference} is not verified; it cannot become {Status(to_status).label.lower()} "
            "before the requester's identity is verified."
        )
    for field, value in changes.items():
        setattr(locked, field, value)
    locked.status = to_status
    if to_status in CLOSED_STATUSES:
        locked.closed_at = timezone.now()
        timers_clear(locked)
    elif from_status in CLOSED_STATUSES:
        locked.closed_at = None
        locked.outcome = ""
        locked.denial_reason = ""
        timers_arm(locked)
    verification_timers_set(locked, to_status)
    update_fields = sorted({"status", "closed_at", "outcome", "denial_reason", "updated_at", *TIMER_FIELDS, *changes})
    locked.save(update_fields=update_fields)
    audit_event_record(request=locked, event=event, from_status=from_status, to_status=to_status)
    if email_template:
        email_to_requester(request=locked, template=email_template, context=email_context)
    if to_status == Status.VERIFIED or to_status in CLOSED_STATUSES:
        identity_documents_purge(request=locked)
    if to_status in CLOSED_STATUSES:
        # Apps built on the core (fulfilment) purge what they hold for a closed request.
        transaction.on_commit(lambda: hooks.hooks_notify("request_closed", locked.pk, to_status))
    return locked

"""What the privacy team does to a request: verify, ask, approve, complete, deny, cancel, reopen,
message the requester, add an internal note, assign. Each status change goes through
`request_transition`; the others lock the row and record their event themselves."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dsr import hooks
from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.models import (
    CLOSED_STATUSES,
    TYPES_WITHOUT_VERIFICATION,
    DataSubjectRequest,
    DenialReason,
    Outcome,
    Regime,
    RequestType,
    Status,
)
from dsr.services.audit import Actor, audit_event_record
from dsr.services.clock_events import clock_pause_allowed, clock_pause_start
from dsr.services.emails import email_to_requester, email_to_staff, staff_recipients
from dsr.services.events import (
    event_approved,
    event_assigned,
    event_cancelled,
    event_completed,
    event_denied,
    event_information_requested,
    event_internal_note,
    event_reopened,
    event_team_message,
    event_verified,
)
from dsr.services.know_limit import KNOW_LIMIT_MESSAGE, know_limit_reached
from dsr.services.suppression import suppression_add_for_request
from dsr.services.transitions import request_locked, request_transition
from dsr.validators import choice_check, text_required

# The states approve and reopen start from, narrower than TRANSITIONS (the dashboard offers them
# only there): approve only a verified request, reopen only a closed one.
APPROVE_FROM = frozenset({Status.VERIFIED})
REOPEN_FROM = frozenset(CLOSED_STATUSES)


def request_verify(*, request: DataSubjectRequest, actor: Actor, note: str = "", method: str = "manual"):
    verified = request_transition(
        request=request,
        to_status=Status.VERIFIED,
        event=event_verified(actor=actor, method=method, note=(note or "").strip()),
        changes={"verified_at": timezone.now(), "verification_method": method},
        email_template="verified",
    )
    if know_limit_reached(verified):
        # §1798.130(b): a third request to know in 12 months is answered with the rule.
        verified = request_deny(
            request=verified, actor=Actor.system(), reason_category=DenialReason.EXCESSIVE, message=KNOW_LIMIT_MESSAGE
        )
    if verified.status == Status.VERIFIED and actor.type != "staff":
        # Staff who verified by hand know already; a requester's own verification is news.
        email_to_staff(request=verified, template="staff_new_verified", recipients=staff_recipients())
    return verified


def request_approve(*, request: DataSubjectRequest, actor: Actor, note: str = ""):
    """Start work on a verified request. Only from `verified`: a closed request is reopened
    first, a waiting one is answered first."""
    approved = request_transition(
        request=request,
        to_status=Status.IN_PROGRESS,
        event=event_approved(actor=actor, note=(note or "").strip()),
        email_template="approved",
        from_statuses=APPROVE_FROM,
    )
    # Fulfilment (when installed) starts the search across the business's systems once this commits.
    transaction.on_commit(lambda: hooks.hooks_notify("request_approved", approved.pk))
    return approved


def request_complete(*, request: DataSubjectRequest, actor: Actor, message: str, outcome: str = Outcome.COMPLIED):
    message = text_required(message, "message", "A message to the requester saying what was done")
    if outcome not in (Outcome.COMPLIED, Outcome.COMPLIED_IN_PART):
        raise InvalidInput("outcome must be 'complied' or 'complied_in_part'.", field="outcome")
    completed = request_transition(
        request=request,
        to_status=Status.COMPLETED,
        event=event_completed(actor=actor, outcome=outcome, message=message),
        changes={"outcome": outcome, "response_message": message},
        email_template="opt_out_confirmed" if request.request_type in TYPES_WITHOUT_VERIFICATION else "completed",
        email_context={"message": message, "outcome": outcome},
    )
    # A completed opt-out goes on the suppression list, in the same transaction as the completion.
    suppression_add_for_request(request=completed)
    return completed


def request_deny(*, request: DataSubjectRequest, actor: Actor, reason_category: str, message: str):
    choice_check(reason_category, DenialReason, "reason_category")
    # Art 12(4), RULES.md §4: every refusal states its reasons.
    message = text_required(message, "message", "A message to the requester explaining the refusal")
    return request_transition(
        request=request,
        to_status=Status.DENIED,
        event=event_denied(actor=actor, reason_category=reason_category, message=message),
        changes={"outcome": Outcome.DENIED, "denial_reason": reason_category, "response_message": message},
        email_template="denied",
        email_context={
            "message": message,
            # §7022: refusing a deletion, a business that sells or shares offers the opt-out.
            "offer_opt_out": request.regime == Regime.CCPA
            and request.request_type == RequestType.ERASURE
            and settings.DSR_BUSINESS_SELLS_OR_SHARES,
        },
    )


def request_cancel(*, request: DataSubjectRequest, actor: Actor, reason: str):
    reason = text_required(reason, "reason", "A reason")
    return request_transition(
        request=request,
        to_status=Status.CANCELLED,
        event=event_cancelled(actor=actor, reason=reason),
        changes={"outcome": Outcome.CANCELLED},
        email_template="cancelled",
        email_context={"message": reason},
    )


def reopened_status(request: DataSubjectRequest) -> str:
    """Where reopening takes a request: back to work if it was verified (or needs no verification),
    otherwise back to verification."""
    needs_verification = request.request_type not in TYPES_WITHOUT_VERIFICATION and not request.verified_at
    return Status.AWAITING_VERIFICATION if needs_verification else Status.IN_PROGRESS


@transaction.atomic
def request_reopen(*, request: DataSubjectRequest, actor: Actor, reason: str):
    """Reopen a closed request: back to work if it was verified (or needs no verification),
    otherwise back to verification. An open request cannot be reopened."""
    reason = text_required(reason, "reason", "A reason")
    locked = request_locked(request.pk)
    if locked.status not in REOPEN_FROM:
        raise TransitionNotAllowed(
            f"{locked.reference} is {locked.get_status_display().lower()}; only a closed request can be reopened."
        )
    return request_transition(
        request=locked,
        to_status=reopened_status(locked),
        event=event_reopened(actor=actor, reason=reason),
        email_template="reopened",
        email_context={"message": reason},
        from_statuses=REOPEN_FROM,
    )


def request_information_ask(
    *, request: DataSubjectRequest, actor: Actor, message: str, for_identity: bool = False, id_document: bool = False
):
    """Ask the requester something. With `id_document` the status page offers an upload [policy:
    a copy of a government ID may be required before disclosing billing information]; the copy is
    deleted once the decision is recorded."""
    message = text_required(message, "message", "A message saying what information is needed")
    for_identity = for_identity or id_document
    with transaction.atomic():
        updated = request_transition(
            request=request,
            to_status=Status.AWAITING_REQUESTER,
            event=event_information_requested(
                actor=actor,
                message=message,
                for_identity=for_identity,
                id_document=id_document,
                clock_paused=clock_pause_allowed(request, for_identity=for_identity),
            ),
            email_template="information_requested",
            email_context={"message": message, "clock_paused": clock_pause_allowed(request, for_identity=for_identity)},
        )
        if clock_pause_allowed(updated, for_identity=for_identity):
            clock_pause_start(updated)
    return updated


@transaction.atomic
def request_message_send(*, request: DataSubjectRequest, actor: Actor, message: str) -> DataSubjectRequest:
    """A message from the privacy team to the requester, with no change of status."""
    message = text_required(message, "message", "A message")
    locked = request_locked(request.pk)
    audit_event_record(request=locked, event=event_team_message(actor=actor, message=message))
    email_to_requester(request=locked, template="team_message", context={"message": message})
    return locked


@transaction.atomic
def request_note_add(*, request: DataSubjectRequest, actor: Actor, text: str) -> DataSubjectRequest:
    """An internal note on the timeline: staff read it, the requester never does (reviewers may
    add them). No change of status, no email."""
    text = text_required(text, "text", "A note")
    locked = request_locked(request.pk)
    audit_event_record(request=locked, event=event_internal_note(actor=actor, text=text))
    return locked


@transaction.atomic
def request_assign(*, request: DataSubjectRequest, actor: Actor, assignee) -> DataSubjectRequest:
    """Give the request to a privacy officer, who is told by email (unless they took it themselves)."""
    if assignee is not None and not (assignee.is_active and assignee.has_perm("dsr.work_requests")):
        raise InvalidInput("Requests can only be assigned to an active privacy officer.", field="assignee")
    locked = request_locked(request.pk)
    if locked.assignee_id == (assignee.pk if assignee else None):
        return locked
    previous = locked.assignee.get_username() if locked.assignee else ""
    locked.assignee = assignee
    locked.save(update_fields=["assignee", "updated_at"])
    audit_event_record(
        request=locked,
        event=event_assigned(actor=actor, previous=previous, assignee=assignee.get_username() if assignee else ""),
    )
    if assignee is not None and assignee.email and assignee != actor.user:
        email_to_staff(
            request=locked,
            template="staff_assigned",
            recipients=[assignee.email],
            context={"assignee": assignee, "by": actor.label},
        )
    return locked

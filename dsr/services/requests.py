"""Writes to data-subject requests. `request_transition` is the one door every status change goes
through: it locks the row, checks the transition, writes the audit event and queues the emails that
go out after commit. The web form, the API, the admin and the tasks all call these functions."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from dsr import clock, identity
from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    AccessPeriod,
    Organisation,
    Relationship,
    TYPES_WITHOUT_VERIFICATION,
    Channel,
    ClockPause,
    DataSubjectRequest,
    DenialReason,
    Language,
    Outcome,
    ReferenceCounter,
    Regime,
    RequestDocument,
    RequestType,
    Status,
)
from dsr.services.audit import Actor, audit_event_record
from dsr.services.emails import email_queue, email_to_requester, email_to_staff, requester_status_url, staff_recipients
from dsr.validators import single_line_check

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

ACK_ALERT_DAYS = 2  # alert the team if the acknowledgement has not gone out two days after receipt


# --- Clock glue -----------------------------------------------------------------------------------


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


def _timers_arm(request: DataSubjectRequest) -> None:
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


def _timers_clear(request: DataSubjectRequest) -> None:
    request.ack_alert_on = request.remind_on = request.overdue_on = None
    request.verify_remind_on = request.verify_expire_on = None


MIN_DAYS_TO_VERIFY = 7


def _verification_timers_set(request: DataSubjectRequest, to_status: str) -> None:
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


TIMER_FIELDS = ["ack_alert_on", "remind_on", "overdue_on", "overdue_since", "verify_remind_on", "verify_expire_on"]


# --- Intake ---------------------------------------------------------------------------------------


def reference_next(*, year: int) -> str:
    """DSR-2026-000042. The UPDATE holds the counter row until commit, so numbers never repeat."""
    if not ReferenceCounter.objects.filter(year=year).update(last=F("last") + 1):
        try:
            with transaction.atomic():
                ReferenceCounter.objects.create(year=year, last=1)
        except IntegrityError:  # another intake created the year's row first
            ReferenceCounter.objects.filter(year=year).update(last=F("last") + 1)
    number = ReferenceCounter.objects.values_list("last", flat=True).get(year=year)
    return f"DSR-{year}-{number:06d}"


def _choice_check(value: str, choices, field: str) -> str:
    if value not in choices.values:
        allowed = ", ".join(choices.values)
        raise InvalidInput(f"'{value}' is not a valid {field}; use one of: {allowed}.", field=field)
    return value


@dataclass(frozen=True)
class IntakeDetails:
    """What the public form collects beyond the basics; every field has a safe default."""

    relationship: str = Relationship.CUSTOMER
    access_period: str = AccessPeriod.LAST_12_MONTHS
    corrections: tuple = ()
    agent_name: str = ""
    agent_email: str = ""
    agent_power_of_attorney: bool = False
    gpc_signal: bool = False
    documents: tuple = ()  # (kind, UploadedFile) pairs, checked by documents.document_check


CORRECTABLE_FIELDS = ("full_name", "email", "phone", "postal_address", "postal_code", "customer_number", "other")
# One row per thing that is wrong; more than this in one request is not a person's correction.
CORRECTIONS_MAX = 20


def _corrections_clean(corrections) -> list[dict]:
    cleaned = []
    if len(corrections or ()) > CORRECTIONS_MAX:
        raise InvalidInput(gettext("Send at most %(max)d corrections in one request; describe any others in your own words.")
                           % {"max": CORRECTIONS_MAX}, field="corrections")
    for row in corrections or ():
        if not isinstance(row, dict) or not all(isinstance(row.get(k) or "", str) for k in ("field", "wrong", "correct")):
            raise InvalidInput("Each correction names a field, what is wrong and what is correct, as text.", field="corrections")
        field = (row.get("field") or "").strip()
        wrong, correct = (row.get("wrong") or "").strip(), (row.get("correct") or "").strip()
        if not (wrong or correct):
            continue
        if field not in CORRECTABLE_FIELDS:
            raise InvalidInput(f"'{field}' is not a field that can be corrected.", field="corrections")
        if not correct:
            raise InvalidInput(gettext("Say what the correct value is."), field="corrections")
        single_line_check(wrong, field="corrections")
        single_line_check(correct, field="corrections")
        cleaned.append({"field": field, "wrong": wrong[:500], "correct": correct[:500]})
    return cleaned


@transaction.atomic
def request_submit(
    *,
    request_type: str,
    regime: str,
    email: str,
    full_name: str = "",
    language: str = Language.EN,
    details: str = "",
    channel: str = Channel.WEB,
    received_at: datetime | None = None,
    actor: Actor | None = None,
    intake: IntakeDetails | None = None,
) -> DataSubjectRequest:
    """Record a new request, start its clock at receipt, and send the acknowledgement. Requests
    of an organisation's users are forwarded to its administrator; a repeat of an open request is
    recorded and linked to it, with no second clock."""
    intake = intake or IntakeDetails()
    _choice_check(request_type, RequestType, "type")
    _choice_check(regime, Regime, "regime")
    _choice_check(channel, Channel, "channel")
    _choice_check(language, Language, "language")
    _choice_check(intake.relationship, Relationship, "relationship")
    _choice_check(intake.access_period, AccessPeriod, "access_period")
    email = (email or "").strip()
    if not email or "@" not in email:
        raise InvalidInput(gettext("An email address is needed so that we can answer the request."), field="email")
    single_line_check(email, field="email")
    single_line_check(full_name, field="full_name")
    single_line_check(intake.agent_name, field="agent_name")
    single_line_check(intake.agent_email, field="agent_email")
    corrections = _corrections_clean(intake.corrections)
    if request_type == RequestType.RECTIFICATION and not corrections and not (details or "").strip():
        raise InvalidInput(gettext("Tell us what is wrong and what is right."), field="corrections")
    if (intake.agent_name or intake.agent_email) and not (intake.agent_power_of_attorney or intake.documents):
        raise InvalidInput(
            gettext("An authorised agent needs the consumer's signed permission or a power of attorney."), field="agent_document"
        )
    from dsr.services.documents import document_check, document_store

    documents = [(kind, document_check(upload)) for kind, upload in intake.documents]
    now = timezone.now()
    if received_at is None:
        received_at = now
    if timezone.is_naive(received_at):
        raise InvalidInput("received_at must include a time zone offset.", field="received_at")
    if received_at > now + timedelta(minutes=5):
        raise InvalidInput("received_at cannot be in the future.", field="received_at")
    received_on = clock.local_date(received_at, settings.DSR_TIME_ZONE)
    deadlines = deadlines_for(regime=regime, request_type=request_type, received_on=received_on)
    actor = actor or Actor.requester(email)

    request = DataSubjectRequest(
        reference=reference_next(year=received_on.year),
        request_type=request_type,
        regime=regime,
        channel=channel,
        language=language,
        email=email,
        full_name=(full_name or "").strip()[:200],
        details=details or "",
        corrections=corrections,
        relationship=intake.relationship,
        access_period=intake.access_period,
        agent_name=(intake.agent_name or "").strip()[:200],
        agent_email=(intake.agent_email or "").strip(),
        agent_power_of_attorney=intake.agent_power_of_attorney,
        gpc_signal=intake.gpc_signal,
        received_at=received_at,
        acknowledge_by=deadlines.acknowledge_by,
        original_respond_by=deadlines.original_respond_by,
        respond_by=deadlines.respond_by,
        status=Status.RECEIVED,
    )
    _timers_arm(request)
    request.save(force_insert=True)
    audit_event_record(
        request=request,
        event_type="received",
        actor=actor,
        to_status=Status.RECEIVED,
        data={
            "type": request_type,
            "regime": regime,
            "channel": channel,
            "relationship": intake.relationship,
            "agent": bool(request.agent_name or request.agent_email),
            "gpc": intake.gpc_signal,
            "received_at": received_at,
            "acknowledge_by": deadlines.acknowledge_by,
            "respond_by": deadlines.respond_by,
        },
    )
    for kind, checked in documents:
        document_store(request=request, kind=kind, checked=checked)

    if intake.relationship == Relationship.ORG_USER:
        forwarded = _organisation_forward(request)
        if forwarded is not None:
            return forwarded
    original = (
        DataSubjectRequest.objects.filter(
            email__iexact=email, request_type=request_type, status__in=OPEN_STATUSES, duplicate_of__isnull=True
        )
        .exclude(pk=request.pk)
        .order_by("received_at")
        .first()
    )
    if original is not None:
        return _duplicate_link(request, original)
    if request_type in TYPES_WITHOUT_VERIFICATION:
        # §7060(b), §7027: opt-outs and limits are honoured without verifying identity.
        request = request_transition(
            request=request,
            to_status=Status.IN_PROGRESS,
            actor=Actor.system(),
            event_type="verification_not_required",
            email_template="received",
        )
    else:
        from dsr.services.verification import challenge_create

        issued = challenge_create(request=request)
        request = request_transition(
            request=request,
            to_status=Status.AWAITING_VERIFICATION,
            actor=Actor.system(),
            event_type="verification_started",
            email_template="received",
            email_context={**issued.email_context(),
                           "declaration_required": identity.declaration_required(regime=regime, request_type=request_type)},
        )
    return request


@transaction.atomic
def request_submit_with_gpc(
    *, request_type: str, regime: str, email: str, full_name: str, details: str, language: str, intake: IntakeDetails
) -> DataSubjectRequest:
    """The public form's submission. §7025: a browser sending Global Privacy Control has opted out
    of sale/sharing, so the opt-out is recorded for this person too — in the same transaction, so
    that a failure stores neither and a retry makes no duplicate."""
    created = request_submit(
        request_type=request_type, regime=regime, email=email, full_name=full_name, details=details,
        language=language, intake=intake,
    )
    if intake.gpc_signal and request_type != RequestType.OPT_OUT_SALE:
        request_submit(
            request_type=RequestType.OPT_OUT_SALE, regime=regime, email=email, full_name=full_name, language=language,
            details="Recorded from the browser's Global Privacy Control signal.",
            intake=IntakeDetails(relationship=intake.relationship, gpc_signal=True),
        )
    return created


def _organisation_forward(request: DataSubjectRequest) -> DataSubjectRequest | None:
    """[policy] The organisation's administrator controls its users' data: record the request and
    forward it to the administrator contact. Unknown domain: the team handles it as usual."""
    domain = request.email.rsplit("@", 1)[-1].lower()
    organisation = Organisation.objects.filter(email_domain__iexact=domain).first()
    if organisation is None:
        audit_event_record(request=request, event_type="organisation_not_found", actor=Actor.system(), data={"domain": domain})
        return None
    request.organisation = organisation
    request.save(update_fields=["organisation", "updated_at"])
    forwarded = request_transition(
        request=request,
        to_status=Status.FORWARDED,
        actor=Actor.system(),
        event_type="forwarded_to_organisation",
        data={"organisation": organisation.name, "to": organisation.admin_contact_email},
        email_template="forwarded",
        email_context={"organisation": organisation},
    )
    email_queue(
        template="organisation_forward",
        to=organisation.admin_contact_email,
        language=settings.LANGUAGE_CODE,
        context={"request": forwarded, "organisation": organisation, "business_name": settings.DSR_BUSINESS_NAME},
        request=forwarded,
    )
    return forwarded


def _duplicate_link(request: DataSubjectRequest, original: DataSubjectRequest) -> DataSubjectRequest:
    """The same person asked the same thing while a request is open: link it, no second clock.
    The answer to the submitter has the same shape as any other (no enumeration)."""
    request.duplicate_of = original
    request.save(update_fields=["duplicate_of", "updated_at"])
    locked_original = request_locked(original.pk)
    audit_event_record(
        request=locked_original, event_type="duplicate_received", actor=Actor.system(),
        data={"reference": request.reference},
    )
    return request_transition(
        request=request,
        to_status=Status.CANCELLED,
        actor=Actor.system(),
        event_type="linked_as_duplicate",
        data={"original": original.reference},
        changes={"outcome": Outcome.CANCELLED},
        email_template="duplicate",
        email_context={"original": locked_original, "original_status_url": requester_status_url(locked_original)},
    )


# --- The one door ---------------------------------------------------------------------------------


def request_locked(request_id: int) -> DataSubjectRequest:
    """The only place that takes a request's row lock."""
    return DataSubjectRequest.objects.select_for_update().get(pk=request_id)


@transaction.atomic
def request_transition(
    *,
    request: DataSubjectRequest,
    to_status: str,
    actor: Actor,
    event_type: str,
    data: dict | None = None,
    changes: dict | None = None,
    email_template: str | None = None,
    email_context: dict | None = None,
    from_statuses: frozenset[str] | None = None,
) -> DataSubjectRequest:
    """Move a request to `to_status`: lock, check, update, audit, queue the requester's email.
    `from_statuses` narrows the table for one action (approve only a verified request).
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
        _timers_clear(locked)
    elif from_status in CLOSED_STATUSES:
        locked.closed_at = None
        locked.outcome = ""
        locked.denial_reason = ""
        _timers_arm(locked)
    _verification_timers_set(locked, to_status)
    update_fields = sorted({"status", "closed_at", "outcome", "denial_reason", "updated_at", *TIMER_FIELDS, *changes})
    locked.save(update_fields=update_fields)
    audit_event_record(
        request=locked,
        event_type=event_type,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        data=data,
    )
    if email_template:
        email_to_requester(request=locked, template=email_template, context=email_context)
    if to_status == Status.VERIFIED or to_status in CLOSED_STATUSES:
        from dsr.services.documents import identity_documents_purge

        identity_documents_purge(request=locked)
    return locked


# --- Actions --------------------------------------------------------------------------------------


def _text_required(value: str | None, field: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{what} is required.", field=field)
    return value


def request_verify(*, request: DataSubjectRequest, actor: Actor, note: str = "", method: str = "manual"):
    verified = request_transition(
        request=request,
        to_status=Status.VERIFIED,
        actor=actor,
        event_type="verified",
        data={"method": method, "note": (note or "").strip()},
        changes={"verified_at": timezone.now(), "verification_method": method},
        email_template="verified",
    )
    verified = _access_limit_apply(verified)
    if verified.status == Status.VERIFIED and actor.type != "staff":
        # Staff who verified by hand know already; a requester's own verification is news.
        email_to_staff(request=verified, template="staff_new_verified", recipients=staff_recipients())
    return verified


CCPA_KNOW_TYPES = (RequestType.ACCESS, RequestType.ACCESS_SPECIFIC, RequestType.PORTABILITY)
KNOW_REQUESTS_PER_YEAR = 2


def _access_limit_apply(request: DataSubjectRequest) -> DataSubjectRequest:
    """CCPA §1798.130(b) [policy]: no duty to answer more than two right-to-know requests in 12
    months. A third from the same verified person is answered with the rule, not a new access run.
    Corrections do not count (§7023(j))."""
    if request.regime != Regime.CCPA or request.request_type not in CCPA_KNOW_TYPES:
        return request
    since = request.received_at - timedelta(days=365)
    earlier = (
        DataSubjectRequest.objects.filter(
            email__iexact=request.email, regime=Regime.CCPA, request_type__in=CCPA_KNOW_TYPES,
            verified_at__isnull=False, received_at__gte=since, received_at__lt=request.received_at,
            duplicate_of__isnull=True,
        )
        .exclude(status__in=(Status.CANCELLED,))
        .count()
    )
    if earlier < KNOW_REQUESTS_PER_YEAR:
        return request
    return request_deny(
        request=request,
        actor=Actor.system(),
        reason_category=DenialReason.EXCESSIVE,
        message=(
            "You have already received answers to two requests to know in the last 12 months. Under "
            "California law (Cal. Civ. Code §1798.130(b)) we are not required to answer more than two such "
            "requests in a 12-month period, so we will not run a new search now. You may ask again once 12 "
            "months have passed since your first request."
        ),
    )


def request_approve(*, request: DataSubjectRequest, actor: Actor, note: str = ""):
    """Start work on a verified request. Only from `verified`: a closed request is reopened
    first, a waiting one is answered first."""
    return request_transition(
        request=request,
        to_status=Status.IN_PROGRESS,
        actor=actor,
        event_type="approved",
        data={"note": (note or "").strip()},
        email_template="approved",
        from_statuses=frozenset({Status.VERIFIED}),
    )


def request_complete(*, request: DataSubjectRequest, actor: Actor, message: str, outcome: str = Outcome.COMPLIED):
    message = _text_required(message, "message", "A message to the requester saying what was done")
    if outcome not in (Outcome.COMPLIED, Outcome.COMPLIED_IN_PART):
        raise InvalidInput("outcome must be 'complied' or 'complied_in_part'.", field="outcome")
    return request_transition(
        request=request,
        to_status=Status.COMPLETED,
        actor=actor,
        event_type="completed",
        data={"outcome": outcome, "message": message},
        changes={"outcome": outcome, "response_message": message},
        email_template="opt_out_confirmed" if request.request_type in TYPES_WITHOUT_VERIFICATION else "completed",
        email_context={"message": message, "outcome": outcome},
    )


def request_deny(*, request: DataSubjectRequest, actor: Actor, reason_category: str, message: str):
    _choice_check(reason_category, DenialReason, "reason_category")
    # Art 12(4), RULES.md §4: every refusal states its reasons.
    message = _text_required(message, "message", "A message to the requester explaining the refusal")
    return request_transition(
        request=request,
        to_status=Status.DENIED,
        actor=actor,
        event_type="denied",
        data={"reason_category": reason_category, "message": message},
        changes={"outcome": Outcome.DENIED, "denial_reason": reason_category, "response_message": message},
        email_template="denied",
        email_context={
            "message": message,
            # §7022: refusing a deletion, a business that sells or shares offers the opt-out.
            "offer_opt_out": request.regime == Regime.CCPA and request.request_type == RequestType.ERASURE
            and settings.DSR_BUSINESS_SELLS_OR_SHARES,
        },
    )


def request_cancel(*, request: DataSubjectRequest, actor: Actor, reason: str):
    reason = _text_required(reason, "reason", "A reason")
    return request_transition(
        request=request,
        to_status=Status.CANCELLED,
        actor=actor,
        event_type="cancelled",
        data={"reason": reason},
        changes={"outcome": Outcome.CANCELLED},
        email_template="cancelled",
        email_context={"message": reason},
    )


@transaction.atomic
def request_reopen(*, request: DataSubjectRequest, actor: Actor, reason: str):
    """Reopen a closed request: back to work if it was verified (or needs no verification),
    otherwise back to verification. An open request cannot be reopened."""
    reason = _text_required(reason, "reason", "A reason")
    locked = request_locked(request.pk)
    if locked.status not in CLOSED_STATUSES:
        raise TransitionNotAllowed(
            f"{locked.reference} is {locked.get_status_display().lower()}; only a closed request can be reopened."
        )
    needs_verification = locked.request_type not in TYPES_WITHOUT_VERIFICATION and not locked.verified_at
    return request_transition(
        request=locked,
        to_status=Status.AWAITING_VERIFICATION if needs_verification else Status.IN_PROGRESS,
        actor=actor,
        event_type="reopened",
        data={"reason": reason},
        email_template="reopened",
        email_context={"message": reason},
        from_statuses=frozenset(CLOSED_STATUSES),
    )


def _pause_allowed(request: DataSubjectRequest, for_identity: bool) -> bool:
    # EDPB ¶159 (check): only GDPR, only for identity information, only when the business opts in.
    # CCPA §7021(b): the 45 days never pause.
    return settings.DSR_GDPR_PAUSE_ENABLED and for_identity and request.regime == Regime.GDPR


def request_information_ask(
    *, request: DataSubjectRequest, actor: Actor, message: str, for_identity: bool = False, id_document: bool = False
):
    """Ask the requester something. With `id_document` the status page offers an upload [policy:
    a copy of a government ID may be required before disclosing billing information]; the copy is
    deleted once the decision is recorded."""
    message = _text_required(message, "message", "A message saying what information is needed")
    for_identity = for_identity or id_document
    with transaction.atomic():
        updated = request_transition(
            request=request,
            to_status=Status.AWAITING_REQUESTER,
            actor=actor,
            event_type="information_requested",
            data={"message": message, "for_identity": for_identity, "id_document": id_document,
                  "clock_paused": _pause_allowed(request, for_identity)},
            email_template="information_requested",
            email_context={"message": message, "clock_paused": _pause_allowed(request, for_identity)},
        )
        if _pause_allowed(updated, for_identity):
            now = timezone.now()
            ClockPause.objects.create(
                request=updated, started_at=now, started_on=clock.local_date(now, settings.DSR_TIME_ZONE)
            )
    return updated


@transaction.atomic
def request_requester_reply(*, request: DataSubjectRequest, message: str, document=None):
    """The requester answered a question: any pause ends (moving the deadline by the days paused),
    then the request goes back to where it was."""
    message = (message or "").strip()
    if not message and document is None:
        raise InvalidInput(gettext("A reply is required."), field="message")
    locked = request_locked(request.pk)
    if locked.status != Status.AWAITING_REQUESTER:
        raise TransitionNotAllowed(f"{locked.reference} is not waiting for a reply.")
    if document is not None:
        from dsr.services.documents import document_check, document_store

        document_store(request=locked, kind=RequestDocument.Kind.IDENTITY, checked=document_check(document, field="document"))
    pause = ClockPause.objects.filter(request=locked, ended_at__isnull=True).first()
    if pause:
        now = timezone.now()
        pause.ended_at = now
        pause.ended_on = clock.local_date(now, settings.DSR_TIME_ZONE)
        pause.save(update_fields=["ended_at", "ended_on"])
        paused = (pause.ended_on - pause.started_on).days
        _deadline_recompute(
            locked,
            paused_days=locked.paused_days + paused,
            event_type="clock_resumed",
            data={"paused_from": pause.started_on, "paused_to": pause.ended_on, "days": paused},
        )
    verified = locked.verified_at or locked.request_type in TYPES_WITHOUT_VERIFICATION
    return request_transition(
        request=locked,
        to_status=Status.IN_PROGRESS if verified else Status.AWAITING_VERIFICATION,
        actor=Actor.requester(locked.email),
        event_type="requester_replied",
        data={"message": message, "document": document is not None},
        email_template="reply_received",
    )


def _deadline_recompute(request: DataSubjectRequest, *, paused_days: int, event_type: str, data: dict) -> None:
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
    _timers_arm(request)
    request.save(update_fields=["paused_days", "respond_by", "updated_at", *TIMER_FIELDS])
    audit_event_record(
        request=request,
        event_type=event_type,
        actor=Actor.system(),
        data={**data, "respond_by_was": old, "respond_by": request.respond_by},
    )


@transaction.atomic
def request_extend(*, request: DataSubjectRequest, actor: Actor, reason: str) -> DataSubjectRequest:
    """CCPA §1798.130(a)(2)(A): once, up to 45 more days, noticed before day 45.
    GDPR Art 12(3): two further months, the subject told within the first month."""
    reason = _text_required(reason, "reason", "A reason for the extension")
    locked = request_locked(request.pk)
    if locked.status in CLOSED_STATUSES:
        raise TransitionNotAllowed(f"{locked.reference} is closed; its deadline cannot be extended.")
    try:
        clock.extension_check(
            regime=locked.regime,
            request_type=locked.request_type,
            today=business_today(),
            original_respond_by=locked.original_respond_by,
            already_extended=locked.is_extended,
            reason=reason,
        )
    except clock.ClockError as exc:
        raise TransitionNotAllowed(f"{locked.reference}: {exc}") from exc
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
    _timers_arm(locked)
    locked.save(update_fields=["respond_by", "extended_at", "extension_reason", "updated_at", *TIMER_FIELDS])
    audit_event_record(
        request=locked,
        event_type="extended",
        actor=actor,
        data={"reason": reason, "respond_by_was": old, "respond_by": locked.respond_by},
    )
    email_to_requester(request=locked, template="extended", context={"reason": reason, "previous_deadline": old})
    return locked


@transaction.atomic
def request_acknowledgement_record(*, request_id: int, email) -> None:
    """The acknowledgement email went out (§7021(a)): stamp it once and stop the alert timer."""
    locked = request_locked(request_id)
    if locked.acknowledged_at:
        return
    locked.acknowledged_at = email.sent_at or timezone.now()
    locked.ack_alert_on = None
    locked.save(update_fields=["acknowledged_at", "ack_alert_on", "updated_at"])
    audit_event_record(
        request=locked,
        event_type="acknowledged",
        actor=Actor.system(),
        data={"email_id": email.pk, "to": email.to, "acknowledge_by": locked.acknowledge_by},
    )


@transaction.atomic
def request_flag(*, request_id: int, reason: str, data: dict | None = None) -> bool:
    """Mark a request for the team's attention. Returns False when it was already flagged."""
    locked = request_locked(request_id)
    if locked.flagged_at:
        return False
    locked.flagged_at = timezone.now()
    locked.flag_reason = reason[:200]
    locked.save(update_fields=["flagged_at", "flag_reason", "updated_at"])
    audit_event_record(request=locked, event_type="flagged", actor=Actor.system(), data={"reason": reason, **(data or {})})
    return True


@transaction.atomic
def request_message_send(*, request: DataSubjectRequest, actor: Actor, message: str) -> DataSubjectRequest:
    """A message from the privacy team to the requester, with no change of status."""
    message = _text_required(message, "message", "A message")
    locked = request_locked(request.pk)
    audit_event_record(request=locked, event_type="team_message", actor=actor, data={"message": message})
    email_to_requester(request=locked, template="team_message", context={"message": message})
    return locked


def marketing_opt_out_record(*, email: str, language: str = Language.EN) -> DataSubjectRequest:
    """One-click unsubscribe (RFC 8058): a marketing opt-out for the address, honoured without
    verification; a repeat click links to the open one (no second clock, no second email storm)."""
    return request_submit(
        request_type=RequestType.OPT_OUT_MARKETING, regime=Regime.OTHER, email=email, language=language,
        details="One-click unsubscribe from an email.", actor=Actor.requester(email),
    )


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
        request=locked, event_type="assigned", actor=actor,
        data={"from": previous, "to": assignee.get_username() if assignee else ""},
    )
    if assignee is not None and assignee.email and assignee != actor.user:
        email_to_staff(request=locked, template="staff_assigned", recipients=[assignee.email], context={"assignee": assignee, "by": actor.label})
    return locked

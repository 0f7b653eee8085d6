"""What arrives from the requester: a new request (its checks, its clock started at receipt, the
acknowledgement), forwarded to an organisation's administrator or linked to an open duplicate;
the form's submission with the opt-out a Global Privacy Control signal records (§7025); a
one-click marketing unsubscribe; and the requester's reply to the team's question."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from dsr import clock, hooks, identity
from dsr.deadlines import deadlines_for, timers_arm
from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.models import (
    CORRECTABLE_FIELDS,
    OPEN_STATUSES,
    TYPES_WITHOUT_VERIFICATION,
    AccessPeriod,
    Channel,
    DataSubjectRequest,
    Language,
    MarketingUnsubscribe,
    Organisation,
    Outcome,
    ReferenceCounter,
    Regime,
    Relationship,
    RequestDocument,
    RequestType,
    Status,
    SuppressionScope,
    SuppressionSource,
    email_key_of,
)
from dsr.services.audit import Actor, audit_event_record
from dsr.services.challenges import challenge_create
from dsr.services.clock_events import clock_pause_end
from dsr.services.documents import document_check, document_store
from dsr.services.emails import email_queue, requester_status_url
from dsr.services.events import (
    event_duplicate_received,
    event_forwarded_to_organisation,
    event_linked_as_duplicate,
    event_organisation_not_found,
    event_received,
    event_requester_replied,
    event_verification_not_required,
    event_verification_started,
)
from dsr.services.suppression import suppression_add
from dsr.services.transitions import request_locked, request_transition
from dsr.validators import choice_check, single_line_check

EARLIEST_RECEIPT = datetime(2018, 5, 25, tzinfo=UTC)


def reference_next(*, year: int) -> str:
    """DSR-2026-000042: the year of receipt and a number. On PostgreSQL the number comes from one
    sequence (`dsr_reference_seq`, migration 0016): `nextval` takes no lock held to commit, so
    concurrent intakes never wait on each other; numbers are unique and rising, not gap-free (a
    rolled-back intake leaves a gap) and do not restart with the year. On SQLite, whose writers are
    serialised anyway, the year's counter row: the UPDATE holds it until commit."""
    if connection.vendor == "postgresql":
        return f"DSR-{year}-{_reference_sequence_next():06d}"
    if not ReferenceCounter.objects.filter(year=year).update(last=F("last") + 1):
        try:
            with transaction.atomic():
                ReferenceCounter.objects.create(year=year, last=1)
        except IntegrityError:  # another intake created the year's row first
            ReferenceCounter.objects.filter(year=year).update(last=F("last") + 1)
    number = ReferenceCounter.objects.values_list("last", flat=True).get(year=year)
    return f"DSR-{year}-{number:06d}"


def open_requests_of(email: str, request_type: str):
    """The open, original requests of this type from this address (any case): the duplicate
    check's query, served by the index on (email_key, request_type) on every database."""
    return DataSubjectRequest.objects.filter(
        email_key=email_key_of(email), request_type=request_type, status__in=OPEN_STATUSES, duplicate_of__isnull=True
    )


def _reference_sequence_next() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('dsr_reference_seq')")
        return int(cursor.fetchone()[0])


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


# One row per thing that is wrong; more than this in one request is not a person's correction.
CORRECTIONS_MAX = 20


def _corrections_clean(corrections) -> list[dict]:
    cleaned = []
    if len(corrections or ()) > CORRECTIONS_MAX:
        raise InvalidInput(
            gettext("Send at most %(max)d corrections in one request; describe any others in your own words.")
            % {"max": CORRECTIONS_MAX},
            field="corrections",
        )
    for row in corrections or ():
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k) or "", str) for k in ("field", "wrong", "correct")
        ):
            raise InvalidInput(
                "Each correction names a field, what is wrong and what is correct, as text.", field="corrections"
            )
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
    choice_check(request_type, RequestType, "type")
    choice_check(regime, Regime, "regime")
    choice_check(channel, Channel, "channel")
    choice_check(language, Language, "language")
    choice_check(intake.relationship, Relationship, "relationship")
    choice_check(intake.access_period, AccessPeriod, "access_period")
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
            gettext("An authorised agent needs the consumer's signed permission or a power of attorney."),
            field="agent_document",
        )
    documents = [(kind, document_check(upload)) for kind, upload in intake.documents]
    now = timezone.now()
    if received_at is None:
        received_at = now
    if timezone.is_naive(received_at):
        raise InvalidInput("received_at must include a time zone offset.", field="received_at")
    if received_at > now + timedelta(minutes=5):
        raise InvalidInput("received_at cannot be in the future.", field="received_at")
    if received_at < EARLIEST_RECEIPT:
        # No request under these laws predates the GDPR (and CCPA came later still); the bound
        # also keeps deadline arithmetic far from the calendar's ends.
        raise InvalidInput(
            "received_at cannot be before 25 May 2018, when the GDPR began to apply.", field="received_at"
        )
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
    timers_arm(request)
    request.save(force_insert=True)
    audit_event_record(
        request=request,
        to_status=Status.RECEIVED,
        event=event_received(
            actor=actor,
            request_type=request_type,
            regime=regime,
            channel=channel,
            relationship=intake.relationship,
            agent=bool(request.agent_name or request.agent_email),
            gpc=intake.gpc_signal,
            received_at=received_at,
            acknowledge_by=deadlines.acknowledge_by,
            respond_by=deadlines.respond_by,
        ),
    )
    for kind, checked in documents:
        document_store(request=request, kind=kind, checked=checked)
    if intake.gpc_signal:
        # §7025: the browser's signal is an opt-out of sale/sharing on its own, whatever was asked.
        suppression_add(email=email, scope=SuppressionScope.SALE_SHARING, source=SuppressionSource.GPC, request=request)

    if intake.relationship == Relationship.ORG_USER:
        forwarded = _organisation_forward(request)
        if forwarded is not None:
            return forwarded
    original = open_requests_of(email, request_type).exclude(pk=request.pk).order_by("received_at").first()
    if original is not None:
        return _duplicate_link(request, original)
    if request_type in TYPES_WITHOUT_VERIFICATION:
        # §7060(b), §7027: opt-outs and limits are honoured without verifying identity.
        request = request_transition(
            request=request,
            to_status=Status.IN_PROGRESS,
            event=event_verification_not_required(),
            email_template="received",
        )
        # Work starts now, as on approval: fulfilment (when installed) passes the opt-out on to the
        # systems and recipients once this commits (§7026(f): within 15 business days).
        started_id = request.pk
        transaction.on_commit(lambda: hooks.hooks_notify("request_approved", started_id))
    else:
        issued = challenge_create(request=request)
        request = request_transition(
            request=request,
            to_status=Status.AWAITING_VERIFICATION,
            event=event_verification_started(),
            email_template="received",
            email_context={
                **issued.email_context(),
                "declaration_required": identity.declaration_required(regime=regime, request_type=request_type),
            },
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
        request_type=request_type,
        regime=regime,
        email=email,
        full_name=full_name,
        details=details,
        language=language,
        intake=intake,
    )
    if intake.gpc_signal and request_type != RequestType.OPT_OUT_SALE:
        request_submit(
            request_type=RequestType.OPT_OUT_SALE,
            regime=regime,
            email=email,
            full_name=full_name,
            language=language,
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
        audit_event_record(request=request, event=event_organisation_not_found(domain=domain))
        return None
    request.organisation = organisation
    request.save(update_fields=["organisation", "updated_at"])
    forwarded = request_transition(
        request=request,
        to_status=Status.FORWARDED,
        event=event_forwarded_to_organisation(organisation=organisation.name, to=organisation.admin_contact_email),
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
    audit_event_record(request=locked_original, event=event_duplicate_received(reference=request.reference))
    return request_transition(
        request=request,
        to_status=Status.CANCELLED,
        event=event_linked_as_duplicate(original=original.reference),
        changes={"outcome": Outcome.CANCELLED},
        email_template="duplicate",
        email_context={"original": locked_original, "original_status_url": requester_status_url(locked_original)},
    )


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
        document_store(
            request=locked, kind=RequestDocument.Kind.IDENTITY, checked=document_check(document, field="document")
        )
    clock_pause_end(locked)
    verified = locked.verified_at or locked.request_type in TYPES_WITHOUT_VERIFICATION
    return request_transition(
        request=locked,
        to_status=Status.IN_PROGRESS if verified else Status.AWAITING_VERIFICATION,
        event=event_requester_replied(email=locked.email, message=message, document=document is not None),
        email_template="reply_received",
    )


def marketing_opt_out_record(*, email: str, language: str = Language.EN) -> DataSubjectRequest:
    """One-click unsubscribe (RFC 8058): a marketing opt-out for the address, honoured without
    verification; a repeat click links to the open one (no second clock, no second email storm)."""
    return request_submit(
        request_type=RequestType.OPT_OUT_MARKETING,
        regime=Regime.OTHER,
        email=email,
        language=language,
        details="One-click unsubscribe from an email.",
        actor=Actor.requester(email),
    )


@transaction.atomic
def unsubscribe_use(*, record: MarketingUnsubscribe, language: str) -> bool:
    """Record the opt-out. True for the use that did it; False for every repeat, which writes
    nothing. The conditional UPDATE is the claim: a concurrent second use waits for the first's
    row lock and then finds the record used."""
    claimed = MarketingUnsubscribe.objects.filter(pk=record.pk, used_at__isnull=True).update(used_at=timezone.now())
    if not claimed:
        return False
    opt_out = marketing_opt_out_record(email=record.email, language=language)
    suppression_add(
        email=record.email, scope=SuppressionScope.MARKETING, source=SuppressionSource.UNSUBSCRIBE, request=opt_out
    )
    return True

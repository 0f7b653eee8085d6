"""One constructor per kind of event, with the data that kind records (the model: Saleor's
order/events.py). Services pass what they return to `audit_event_record` or, for a change of
status, to `request_transition`, which records it with the move; nothing else builds an Event, so
the timeline, the audit chain and the reports name each kind the same way (dsr.event_types)."""

from datetime import date, datetime

from dsr.event_types import EventType
from dsr.services.audit import Actor, Event

SWEEP = "deadline sweep"
EMAIL_PROVIDER = "email provider"
FULFILMENT = "fulfilment"

# --- Intake ----------------------------------------------------------------------------------------


def event_received(
    *,
    actor: Actor,
    request_type: str,
    regime: str,
    channel: str,
    relationship: str,
    agent: bool,
    gpc: bool,
    received_at: datetime,
    acknowledge_by: date | None,
    respond_by: date,
) -> Event:
    return Event(
        EventType.RECEIVED,
        actor,
        {
            "type": request_type,
            "regime": regime,
            "channel": channel,
            "relationship": relationship,
            "agent": agent,
            "gpc": gpc,
            "received_at": received_at,
            "acknowledge_by": acknowledge_by,
            "respond_by": respond_by,
        },
    )


def event_verification_not_required() -> Event:
    return Event(EventType.VERIFICATION_NOT_REQUIRED, Actor.system())


def event_verification_started() -> Event:
    return Event(EventType.VERIFICATION_STARTED, Actor.system())


def event_organisation_not_found(*, domain: str) -> Event:
    return Event(EventType.ORGANISATION_NOT_FOUND, Actor.system(), {"domain": domain})


def event_forwarded_to_organisation(*, organisation: str, to: str) -> Event:
    return Event(EventType.FORWARDED_TO_ORGANISATION, Actor.system(), {"organisation": organisation, "to": to})


def event_duplicate_received(*, reference: str) -> Event:
    """On the open request: the same person asked again (the new request's reference)."""
    return Event(EventType.DUPLICATE_RECEIVED, Actor.system(), {"reference": reference})


def event_linked_as_duplicate(*, original: str) -> Event:
    """On the new request, closed and linked to the open one (its reference)."""
    return Event(EventType.LINKED_AS_DUPLICATE, Actor.system(), {"original": original})


def event_document_received(*, actor: Actor, kind: str, size: int, sha256: str, content_type: str) -> Event:
    return Event(
        EventType.DOCUMENT_RECEIVED, actor, {"kind": kind, "size": size, "sha256": sha256, "content_type": content_type}
    )


def event_requester_replied(*, email: str, message: str, document: bool) -> Event:
    return Event(EventType.REQUESTER_REPLIED, Actor.requester(email), {"message": message, "document": document})


# --- Verification ----------------------------------------------------------------------------------


def event_verification_link_sent(*, actor: Actor, template: str) -> Event:
    return Event(EventType.VERIFICATION_LINK_SENT, actor, {"template": template})


def event_email_verified(*, email: str, method: str) -> Event:
    return Event(EventType.EMAIL_VERIFIED, Actor.requester(email), {"method": method})


def event_identity_checked(
    *,
    email: str,
    attempt: int,
    max_attempts: int,
    outcome: str,
    points_matched: list,
    points_not_counted: dict,
    points_offered: list,
    required: int,
    declaration: dict | None,
) -> Event:
    """§7060(d): which points matched and why others did not count, never the values typed."""
    return Event(
        EventType.IDENTITY_CHECKED,
        Actor.requester(email),
        {
            "attempt": attempt,
            "max_attempts": max_attempts,
            "outcome": outcome,
            "points_matched": points_matched,
            "points_not_counted": points_not_counted,
            "points_offered": points_offered,
            "required": required,
            "declaration": declaration,
        },
    )


def event_treated_as_categories(*, reason: str, from_type: str, to_type: str) -> Event:
    return Event(EventType.TREATED_AS_CATEGORIES, Actor.system(), {"reason": reason, "from": from_type, "to": to_type})


def event_identity_review_required(*, failed_attempts: int, max_attempts: int) -> Event:
    return Event(
        EventType.IDENTITY_REVIEW_REQUIRED,
        Actor.system(),
        {"failed_attempts": failed_attempts, "max_attempts": max_attempts},
    )


def event_reauthentication_failed(*, email: str) -> Event:
    return Event(EventType.REAUTHENTICATION_FAILED, Actor.requester(email))


def event_identity_document_deleted(*, count: int, sha256: list[str]) -> Event:
    return Event(
        EventType.IDENTITY_DOCUMENT_DELETED,
        Actor.system(),
        {"count": count, "sha256": sha256, "note": "ID checked; copy deleted"},
    )


# --- The team's actions ----------------------------------------------------------------------------


def event_verified(*, actor: Actor, method: str, note: str) -> Event:
    return Event(EventType.VERIFIED, actor, {"method": method, "note": note})


def event_approved(*, actor: Actor, note: str) -> Event:
    return Event(EventType.APPROVED, actor, {"note": note})


def event_information_requested(
    *, actor: Actor, message: str, for_identity: bool, id_document: bool, clock_paused: bool
) -> Event:
    return Event(
        EventType.INFORMATION_REQUESTED,
        actor,
        {
            "message": message,
            "for_identity": for_identity,
            "id_document": id_document,
            "clock_paused": clock_paused,
        },
    )


def event_completed(*, actor: Actor, outcome: str, message: str) -> Event:
    return Event(EventType.COMPLETED, actor, {"outcome": outcome, "message": message})


def event_denied(*, actor: Actor, reason_category: str, message: str) -> Event:
    return Event(EventType.DENIED, actor, {"reason_category": reason_category, "message": message})


def event_cancelled(*, actor: Actor, reason: str) -> Event:
    return Event(EventType.CANCELLED, actor, {"reason": reason})


def event_reopened(*, actor: Actor, reason: str) -> Event:
    return Event(EventType.REOPENED, actor, {"reason": reason})


def event_team_message(*, actor: Actor, message: str) -> Event:
    return Event(EventType.TEAM_MESSAGE, actor, {"message": message})


def event_internal_note(*, actor: Actor, text: str) -> Event:
    return Event(EventType.INTERNAL_NOTE, actor, {"text": text})


def event_assigned(*, actor: Actor, previous: str, assignee: str) -> Event:
    """Usernames, empty for nobody."""
    return Event(EventType.ASSIGNED, actor, {"from": previous, "to": assignee})


# --- The clock -------------------------------------------------------------------------------------


def event_extended(*, actor: Actor, reason: str, respond_by_was: date, respond_by: date) -> Event:
    return Event(
        EventType.EXTENDED, actor, {"reason": reason, "respond_by_was": respond_by_was, "respond_by": respond_by}
    )


def event_clock_resumed(
    *, paused_from: date, paused_to: date, days: int, respond_by_was: date, respond_by: date
) -> Event:
    return Event(
        EventType.CLOCK_RESUMED,
        Actor.system(),
        {
            "paused_from": paused_from,
            "paused_to": paused_to,
            "days": days,
            "respond_by_was": respond_by_was,
            "respond_by": respond_by,
        },
    )


def event_acknowledgement_due(*, acknowledge_by: date | None, today: date) -> Event:
    return Event(EventType.ACKNOWLEDGEMENT_DUE, Actor.system(SWEEP), {"acknowledge_by": acknowledge_by, "today": today})


def event_response_due_soon(*, respond_by: date, days_left: int) -> Event:
    return Event(EventType.RESPONSE_DUE_SOON, Actor.system(SWEEP), {"respond_by": respond_by, "days_left": days_left})


def event_overdue(*, respond_by: date, days_late: int) -> Event:
    return Event(EventType.OVERDUE, Actor.system(SWEEP), {"respond_by": respond_by, "days_late": days_late})


# --- Delivery --------------------------------------------------------------------------------------


def event_acknowledged(*, email_id: int, to: str, acknowledge_by: date | None) -> Event:
    """§7021(a): the acknowledgement email went out."""
    return Event(
        EventType.ACKNOWLEDGED, Actor.system(), {"email_id": email_id, "to": to, "acknowledge_by": acknowledge_by}
    )


def event_flagged(*, reason: str, data: dict | None = None) -> Event:
    return Event(EventType.FLAGGED, Actor.system(), {"reason": reason, **(data or {})})


# --- Fulfilment (dsr/fulfilment/) ------------------------------------------------------------------


def event_fulfilment_started(
    *, actor: Actor, run_id: int, datamap_version: str, systems: list[str], package_kind: str, since: datetime | None
) -> Event:
    return Event(
        EventType.FULFILMENT_STARTED,
        actor,
        {
            "run": run_id,
            "datamap_version": datamap_version,
            "systems": systems,
            "package_kind": package_kind,
            "since": since,
        },
    )


def event_fulfilment_system_requested(*, run_id: int, system: str, kind: str, asked: str) -> Event:
    """An asynchronous system (a processor's callback, a manual owner) was asked and answers later."""
    return Event(
        EventType.FULFILMENT_SYSTEM_REQUESTED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "kind": kind, "note": asked},
    )


def event_fulfilment_system_done(*, run_id: int, system: str, kind: str, records: int, counts: dict) -> Event:
    return Event(
        EventType.FULFILMENT_SYSTEM_DONE,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "kind": kind, "records": records, "counts": counts},
    )


def event_fulfilment_system_failed(
    *, run_id: int, system: str, kind: str, error: str, attempts: int, final: bool
) -> Event:
    return Event(
        EventType.FULFILMENT_SYSTEM_FAILED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "kind": kind, "reason": error, "attempts": attempts, "final": final},
    )


def event_fulfilment_system_retried(*, actor: Actor, run_id: int, system: str) -> Event:
    return Event(EventType.FULFILMENT_SYSTEM_RETRIED, actor, {"run": run_id, "system": system})


def event_fulfilment_system_switched_to_manual(*, actor: Actor, run_id: int, system: str, owner: str) -> Event:
    return Event(
        EventType.FULFILMENT_SYSTEM_SWITCHED_TO_MANUAL, actor, {"run": run_id, "system": system, "owner": owner}
    )


def event_fulfilment_manual_answered(
    *, run_id: int, system: str, owner: str, nothing_held: bool, records: int
) -> Event:
    return Event(
        EventType.FULFILMENT_MANUAL_ANSWERED,
        Actor.system(owner),
        {"run": run_id, "system": system, "nothing_held": nothing_held, "records": records},
    )


def event_fulfilment_finished(*, run_id: int, state: str, records: int, failed: list[str]) -> Event:
    return Event(
        EventType.FULFILMENT_FINISHED,
        Actor.system(FULFILMENT),
        {"run": run_id, "state": state, "records": records, "failed": failed},
    )


def event_erasure_planned(*, run_id: int, systems: dict[str, str], problems: list[str]) -> Event:
    """Every system's plan is ready: {system: plan digest}; the problems block approval."""
    return Event(
        EventType.ERASURE_PLANNED, Actor.system(FULFILMENT), {"run": run_id, "systems": systems, "problems": problems}
    )


def event_erasure_approved(*, actor: Actor, run_id: int, approvals: int, needed: int, digests: dict[str, str]) -> Event:
    return Event(
        EventType.ERASURE_APPROVED,
        actor,
        {"run": run_id, "approvals": approvals, "needed": needed, "digests": digests},
    )


def event_erasure_plan_changed(*, run_id: int, system: str, digest: str, detail: str) -> Event:
    return Event(
        EventType.ERASURE_PLAN_CHANGED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "digest": digest, "detail": detail},
    )


def event_erasure_executed(*, run_id: int, system: str, digest: str, counts: dict, fields: dict) -> Event:
    """What the database reported changed, per collection and per field, under the approved plan's digest."""
    return Event(
        EventType.ERASURE_EXECUTED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "digest": digest, "counts": counts, "fields": fields},
    )


def event_erasure_verified(*, run_id: int, system: str, kept: int) -> Event:
    return Event(EventType.ERASURE_VERIFIED, Actor.system(FULFILMENT), {"run": run_id, "system": system, "kept": kept})


def event_erasure_failed(*, run_id: int, system: str, stage: str, error: str) -> Event:
    return Event(
        EventType.ERASURE_FAILED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "stage": stage, "error": error},
    )


def event_instruction_sent(*, run_id: int, system: str, kind: str, action: str, pending: str) -> Event:
    return Event(
        EventType.INSTRUCTION_SENT,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "kind": kind, "action": action, "asked": pending},
    )


def event_instruction_confirmed(*, run_id: int, system: str, action: str, counts: dict, by: str) -> Event:
    return Event(
        EventType.INSTRUCTION_CONFIRMED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "action": action, "counts": counts, "confirmed_by": by},
    )


def event_instruction_failed(
    *, run_id: int, system: str, action: str, error: str, attempts: int, final: bool, by: str
) -> Event:
    return Event(
        EventType.INSTRUCTION_FAILED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "action": action, "reason": error, "attempts": attempts,
         "final": final, "by": by},
    )  # fmt: skip


def event_erasure_replayed(*, run_id: int, system: str, found: int, counts: dict) -> Event:
    return Event(
        EventType.ERASURE_REPLAYED,
        Actor.system(FULFILMENT),
        {"run": run_id, "system": system, "found": found, "counts": counts},
    )


def event_package_built(*, run_id: int, kind: str, files: int, size: int, sha256: str, expires_at: datetime) -> Event:
    return Event(
        EventType.PACKAGE_BUILT,
        Actor.system(FULFILMENT),
        {"run": run_id, "kind": kind, "files": files, "bytes": size, "sha256": sha256, "expires_at": expires_at},
    )


def event_package_code_sent(*, package_id: int) -> Event:
    return Event(EventType.PACKAGE_CODE_SENT, Actor.system(FULFILMENT), {"package": package_id})


def event_package_downloaded(*, actor: Actor, package_id: int, by: str, downloads: int) -> Event:
    return Event(EventType.PACKAGE_DOWNLOADED, actor, {"package": package_id, "by": by, "downloads": downloads})


def event_package_purged(*, package_id: int | None, run_id: int, reason: str) -> Event:
    return Event(
        EventType.PACKAGE_PURGED, Actor.system(FULFILMENT), {"package": package_id, "run": run_id, "reason": reason}
    )


def event_package_reissued(*, actor: Actor, package_id: int, expires_at: datetime) -> Event:
    return Event(EventType.PACKAGE_REISSUED, actor, {"package": package_id, "expires_at": expires_at})


def email_event_type(tracking_type: str) -> EventType:
    """The kind for anymail's normalised tracking event type ("bounced" → email_bounced)."""
    try:
        return EventType(f"email_{tracking_type}")
    except ValueError:  # anymail normalises every ESP's events to its own types; anything else is unknown
        return EventType.EMAIL_UNKNOWN


def event_email_tracked(*, tracking_type: str, email_id: int, template: str, to: str, detail: str) -> Event:
    """What the ESP's tracking webhook reported about one of the request's emails."""
    return Event(
        email_event_type(tracking_type),
        Actor.system(EMAIL_PROVIDER),
        {"email_id": email_id, "template": template, "to": to, "detail": detail},
    )


# --- Opt-outs ----------------------------------------------------------------------------------


def event_suppression_added(*, scope: str, source: str) -> Event:
    """The requester's address went on the suppression list for `scope`; the data names neither the
    address nor its hash (the timeline is no way to link a hash to a person)."""
    return Event(EventType.SUPPRESSION_ADDED, Actor.system("suppression list"), {"scope": scope, "source": source})


# --- Corrections (dsr/fulfilment/services/corrections.py) ------------------------------------------


def event_correction_values_read(*, run_id: int, system: str, counts: dict[str, int]) -> Event:
    """A system's current values of the fields to correct were read for the officer: per
    collection the rows read (the values themselves are shown to staff, never put on the chain)."""
    return Event(
        EventType.CORRECTION_VALUES_READ, Actor.system(FULFILMENT), {"run": run_id, "system": system, "counts": counts}
    )


def event_correction_read_failed(*, run_id: int, system: str, error: str) -> Event:
    return Event(
        EventType.CORRECTION_READ_FAILED, Actor.system(FULFILMENT), {"run": run_id, "system": system, "error": error}
    )


def event_corrections_decided(*, actor: Actor, run_id: int, decisions: list[dict], complete: bool) -> Event:
    """The officer's decisions ([{correction, field, decision, reason}], §7023(b),(d), Art 16);
    `complete` once every correction is decided and the accepted ones are sent to the systems."""
    return Event(EventType.CORRECTIONS_DECIDED, actor, {"run": run_id, "decisions": decisions, "complete": complete})


def event_corrections_passed_on(
    *, run_id: int, systems: dict[str, list[str]], fields: dict[str, list[str]], told: bool
) -> Event:
    """Art 19: for each corrected system, its recipients in the map and the fields corrected;
    `told` says whether a propagation was registered to tell them."""
    return Event(
        EventType.CORRECTIONS_PASSED_ON,
        Actor.system(FULFILMENT),
        {"run": run_id, "systems": systems, "fields": fields, "told": told},
    )


def event_correction_statement_received(*, actor: Actor, words: int, text: str) -> Event:
    """CCPA §7023(f): the requester's statement contesting a rejected correction, kept with the record."""
    return Event(EventType.CORRECTION_STATEMENT_RECEIVED, actor, {"words": words, "text": text})

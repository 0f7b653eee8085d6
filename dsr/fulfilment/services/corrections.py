"""A correction run (rectification: Art 16, §7023): read → decide → apply and read back → pass on
→ answer (issue 11).

`correction_start` (called by `runs.fulfilment_start` for a rectification request: one door)
records the run with one `Correction` per field the requester asked to correct, and queues one
reading task per sql/django system that declares one of those fields (`corrects:` in the map):
the connector finds the person and the current values are stored beside each correction. When
every system is read the run waits in `awaiting_approval` for the officer, who accepts or rejects
each correction with a reason (`corrections_decide`), judging the totality of the evidence
(§7023(b),(d)). A correction of a field the map does not declare cannot be accepted: it is
rejected with a reason, or the map is fixed and the values read again.

Once every correction is decided, the accepted ones go to every system that holds the field
through the instruction channel (`instructions.instructions_send`, action `correct`): the sql and
django handlers (connectors/correction.py) write and read back in one transaction; http and
manual systems get the same instruction through their own handlers. When each system has
confirmed or failed (`instruction_outcome_register`), the run finishes, and Art 19's recipients
of each corrected system are passed on to whatever `corrections_recipients_register` registered.
`correction_answer_send` completes the request with an answer in the requester's language, and a
CCPA requester whose correction was rejected may leave a statement (§7023(f))."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.fulfilment.connectors import connector_for
from dsr.fulfilment.connectors.base import Connector, ConnectorError, Instruction
from dsr.fulfilment.datamap import RECIPIENT_RUN_PREFIX, DataMap, System
from dsr.fulfilment.models import (
    Correction,
    CorrectionDecision,
    CorrectionStatement,
    FulfilmentRun,
    PackageKind,
    RunState,
    SystemRun,
    SystemStatus,
)
from dsr.fulfilment.services import runs
from dsr.fulfilment.services.instructions import (
    instruction_from_json,
    instruction_outcome_register,
    instruction_retell,
    instructions_send,
)
from dsr.fulfilment.services.propagation import recipients_told_lines
from dsr.models import (
    CORRECTION_FIELD_LABELS,
    DataSubjectRequest,
    DenialReason,
    Outcome,
    Regime,
    RequestDocument,
    RequestType,
    Status,
)
from dsr.services.audit import Actor, audit_event_record
from dsr.services.delivery import request_flag
from dsr.services.events import (
    event_correction_read_failed,
    event_correction_statement_received,
    event_correction_values_read,
    event_corrections_decided,
    event_corrections_passed_on,
    event_fulfilment_finished,
    event_fulfilment_started,
)
from dsr.services.staff_actions import request_complete, request_deny
from dsr.services.transitions import request_locked

log = logging.getLogger(__name__)

# The kinds whose current values are read for the officer (a query now); the others are told the
# accepted corrections through the same instruction and confirm later.
READING_KINDS = frozenset({"sql", "django"})
TERMINAL = frozenset({SystemStatus.DONE, SystemStatus.FAILED, SystemStatus.SKIPPED})
NOTHING_TO_CORRECT = "nothing to correct here: the person's rows hold none of the accepted fields"
STATEMENT_MAX_WORDS = 250  # CCPA §7023(f)
STATEMENT_MAX_CHARS = 5000
REASON_MAX_CHARS = 2000


class CorrectionsNotDecidable(TransitionNotAllowed):
    code = "corrections_not_decidable"


# --- Hooks: the queue (ids only, after commit) and Art 19's recipients -----------------------------

_queue: dict[str, Callable[..., Any]] = {}


def queue_register(name: str, function: Callable[..., Any]) -> None:
    _queue[name] = function


def _enqueue(name: str, system_run_id: int) -> None:
    function = _queue.get(name)
    if function is None:  # the tasks module registers on import (AppConfig.ready)
        raise RuntimeError(f"no queue for {name}")
    transaction.on_commit(lambda: function(system_run_id))


RecipientsTell = Callable[[FulfilmentRun, dict[str, Instruction]], Any]
_recipients_tell: list[RecipientsTell] = []


def corrections_recipients_register(function: RecipientsTell) -> None:
    """Art 19: `function(run, {system: Instruction})` is called inside the transaction that
    finishes a correction run, with the instruction each corrected system confirmed, so that every
    recipient the map lists for those systems is told. Until one is registered nothing is told
    (and the timeline says so)."""
    _recipients_tell[:] = [function]


def _datamap() -> DataMap:
    return runs._datamap()


def field_label(word: str) -> str:
    """The request form's name of a correction field, in the active language."""
    return str(CORRECTION_FIELD_LABELS.get(word, word))


def _declared(datamap: DataMap, word: str) -> list[str]:
    return [
        f"{s.name}.{c.name}.{f.name}" for s in datamap.systems for c in s.collections if (f := c.field_correcting(word))
    ]


def _holds_any(system: System, words: set[str]) -> bool:
    return any(c.field_correcting(w) for c in system.collections for w in words)


# --- Start: one reading task per sql/django system that holds a field to correct -------------------


def correction_start(*, locked: DataSubjectRequest, actor: Actor) -> FulfilmentRun:
    """Called by runs.fulfilment_start inside its transaction, the request locked and checked. A
    run still awaiting decisions is replaced (read again, e.g. after the map declared a field)."""
    requested = [c for c in locked.corrections or [] if isinstance(c, dict) and c.get("field")]
    if not requested:
        raise TransitionNotAllowed(
            f"{locked.reference} lists no field-by-field corrections; answer it from what the requester wrote."
        )
    if FulfilmentRun.objects.filter(
        request=locked, package_kind=PackageKind.CORRECTION, state__in=[RunState.RUNNING, RunState.DONE]
    ).exists():
        raise TransitionNotAllowed(f"The corrections of {locked.reference} are being applied or applied already.")
    datamap = _datamap()
    runs.runs_awaiting_cancel(locked)
    run = runs.run_create(
        locked=locked, datamap=datamap, package_kind=PackageKind.CORRECTION, actor=actor,
        busy=f"A run for {locked.reference} is already going on.",
    )  # fmt: skip
    Correction.objects.bulk_create(
        [
            Correction(
                run=run,
                position=position,
                field=str(c["field"]),
                wrong=str(c.get("wrong") or ""),
                correct=str(c.get("correct") or ""),
                declared=_declared(datamap, str(c["field"])),
            )
            for position, c in enumerate(requested, start=1)
        ]
    )
    words = {str(c["field"]) for c in requested}
    readable = [s for s in datamap.systems if s.kind in READING_KINDS and _holds_any(s, words)]
    system_runs = SystemRun.objects.bulk_create([SystemRun(run=run, system=s.name, kind=s.kind) for s in readable])
    audit_event_record(
        request=locked,
        event=event_fulfilment_started(
            actor=actor,
            run_id=run.pk,
            datamap_version=datamap.version,
            systems=[s.name for s in readable],
            package_kind=run.package_kind,
            since=None,
        ),
    )
    for system_run in system_runs:
        _enqueue("read", system_run.pk)
    _reading_finish_if_complete(run.pk)
    return run


def _claim(system_run_id: int) -> SystemRun | None:
    """Take the system for reading, or None when there is nothing to do: a redelivered task (the
    system already read or failed, or claimed by a live attempt) reads nothing twice."""
    now = timezone.now()
    with transaction.atomic():
        system_run = SystemRun.objects.select_for_update().select_related("run__request").get(pk=system_run_id)
        run = system_run.run
        if run.package_kind != PackageKind.CORRECTION or run.state != RunState.RUNNING or run.approved_at:
            return None
        expired = system_run.status == SystemStatus.RUNNING and system_run.lease_until and system_run.lease_until <= now
        if system_run.status != SystemStatus.PENDING and not expired:
            return None
        system_run.status = SystemStatus.RUNNING
        system_run.attempts += 1
        system_run.started_at = system_run.started_at or now
        system_run.lease_until = now + timedelta(seconds=settings.DSR_FULFILMENT_LEASE_SECONDS)
        system_run.save(update_fields=["status", "attempts", "started_at", "lease_until"])
        return system_run


def _shown(value: Any) -> Any:
    """A value as JSON keeps it: text and numbers as they are, dates and decimals as text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (date, datetime, Decimal)):
        return str(value)
    return str(value)


class _ValuesSink:
    """Receives the person's rows from the connector's search and keeps, per declared field, the
    row's key and its current value — nothing else of the row."""

    def __init__(self, system: System, words: set[str]):
        self.system = system
        self.fields: dict[str, list[tuple[str, str]]] = {}  # collection -> [(word, field)]
        for collection in system.collections:
            pairs = [(w, f.name) for w in sorted(words) if (f := collection.field_correcting(w))]
            if pairs:
                self.fields[collection.name] = pairs
        self.values: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}

    def write(self, collection: str, record: dict[str, Any]) -> None:
        pairs = self.fields.get(collection)
        if not pairs:
            return
        key = record.get(self.system.collection(collection).primary_key)
        self.counts[collection] = self.counts.get(collection, 0) + 1
        for word, name in pairs:
            self.values.append(
                {
                    "word": word,
                    "system": self.system.name,
                    "collection": collection,
                    "key": _shown(key),
                    "field": name,
                    "value": _shown(record.get(name)),
                }
            )


def _system_spec(system_run: SystemRun) -> tuple[System, Connector]:
    datamap = _datamap()
    if datamap.version != system_run.run.datamap_version:
        raise ConnectorError(
            f"the data map changed since these corrections were read (version {system_run.run.datamap_version[:12]} "
            f"→ {datamap.version[:12]}); read them again"
        )
    system = datamap.system(system_run.system)
    if system is None:
        raise ConnectorError(f"{system_run.system} is no longer in the data map")
    return system, connector_for(system)


def correction_system_read(*, system_run_id: int) -> None:
    """A reading task: the connector's search (read-only), keeping the declared fields' values."""
    system_run = _claim(system_run_id)
    if system_run is None:
        return
    words = set(Correction.objects.filter(run_id=system_run.run_id).values_list("field", flat=True))
    try:
        system, connector = _system_spec(system_run)
        sink = _ValuesSink(system, words)
        connector.export(runs.subject_for(system_run), sink)
    except Exception as error:  # a connector's failure or bug fails its system, visibly
        if not isinstance(error, ConnectorError):
            log.exception("reading the values to correct in %s failed", system_run.system)
        text = str(error) if isinstance(error, ConnectorError) else f"unexpected error: {type(error).__name__}: {error}"
        _system_read_failed(system_run.pk, error=text)
        return
    _system_read(system_run.pk, values=sink.values, counts=sink.counts)


@transaction.atomic
def _system_read(system_run_id: int, *, values: list[dict[str, Any]], counts: dict[str, int]) -> None:
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    if system_run.status != SystemStatus.RUNNING:
        return
    request = request_locked(system_run.run.request_id)
    for correction in Correction.objects.select_for_update().filter(run_id=system_run.run_id):
        mine = [{k: v for k, v in row.items() if k != "word"} for row in values if row["word"] == correction.field]
        correction.found = [f for f in correction.found if f.get("system") != system_run.system] + mine
        correction.save(update_fields=["found"])
    system_run.status = SystemStatus.PLANNED
    system_run.records = sum(counts.values())
    system_run.counts = counts
    system_run.error = ""
    system_run.lease_until = None
    system_run.save(update_fields=["status", "records", "counts", "error", "lease_until"])
    audit_event_record(
        request=request,
        event=event_correction_values_read(run_id=system_run.run_id, system=system_run.system, counts=counts),
    )
    _reading_finish_if_complete(system_run.run_id)


@transaction.atomic
def _system_read_failed(system_run_id: int, *, error: str) -> None:
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    if system_run.status != SystemStatus.RUNNING:
        return
    request = request_locked(system_run.run.request_id)
    system_run.status = SystemStatus.FAILED
    system_run.error = error[:2000]
    system_run.lease_until = None
    system_run.finished_at = timezone.now()
    system_run.save(update_fields=["status", "error", "lease_until", "finished_at"])
    audit_event_record(
        request=request,
        event=event_correction_read_failed(run_id=system_run.run_id, system=system_run.system, error=system_run.error),
    )
    _reading_finish_if_complete(system_run.run_id)


def _reading_finish_if_complete(run_id: int) -> None:
    if SystemRun.objects.filter(run_id=run_id, status__in=[SystemStatus.PENDING, SystemStatus.RUNNING]).exists():
        return
    run = FulfilmentRun.objects.select_for_update().get(pk=run_id)
    if run.state != RunState.RUNNING or run.approved_at is not None:
        return
    run.state = RunState.AWAITING_APPROVAL
    run.save(update_fields=["state"])


def correction_stalled_requeue() -> int:
    """The sweep: a reading task lost with a broker restart, or whose worker died past its lease,
    is queued again; the claim makes a duplicate harmless."""
    now = timezone.now()
    stalled = SystemRun.objects.filter(
        run__state=RunState.RUNNING, run__package_kind=PackageKind.CORRECTION, run__approved_at__isnull=True
    ).filter(
        Q(status=SystemStatus.PENDING, run__started_at__lt=now - timedelta(minutes=2))
        | Q(status=SystemStatus.RUNNING, lease_until__lt=now)
    )
    count = 0
    for system_run_id in stalled.values_list("pk", flat=True):
        with transaction.atomic():
            _enqueue("read", system_run_id)
        count += 1
    return count


# --- The officer's decisions -----------------------------------------------------------------------

DECISIONS = {"accept": CorrectionDecision.ACCEPTED, "reject": CorrectionDecision.REJECTED}


def _decisions_clean(body: Any, corrections: dict[int, Correction]) -> list[tuple[Correction, str, str]]:
    """The body `[{"id", "decision", "reason"}]`, each item checked; InvalidInput names the item
    (its index in the list) and the field."""
    if not isinstance(body, list) or not body:
        raise InvalidInput(
            'Send a JSON list of decisions: [{"id": …, "decision": "accept" or "reject", "reason": "…"}].',
            field="non_field_errors",
        )
    cleaned: list[tuple[Correction, str, str]] = []
    seen: set[int] = set()
    for index, item in enumerate(body):
        where = f"Item {index + 1}"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} is not an object with id, decision and reason.", field=f"{index}")
        unknown = set(item) - {"id", "decision", "reason"}
        if unknown:
            raise InvalidInput(f"{where}: unknown field {', '.join(sorted(map(str, unknown)))}.", field=f"{index}")
        ident = item.get("id")
        if isinstance(ident, bool) or not isinstance(ident, int):
            raise InvalidInput(f"{where}: 'id' is the number of a correction of this request.", field=f"{index}.id")
        correction = corrections.get(ident)
        if correction is None:
            raise InvalidInput(
                f"{where}: {ident} is not a correction of this request (one of: {', '.join(map(str, corrections))}).",
                field=f"{index}.id",
            )
        if ident in seen:
            raise InvalidInput(f"{where}: correction {ident} is decided twice in one list.", field=f"{index}.id")
        seen.add(ident)
        decision = item.get("decision")
        if decision not in DECISIONS:
            raise InvalidInput(f'{where}: \'decision\' is "accept" or "reject".', field=f"{index}.decision")
        reason = item.get("reason", "")
        if reason is None:
            reason = ""
        if not isinstance(reason, str):
            raise InvalidInput(f"{where}: 'reason' is text.", field=f"{index}.reason")
        reason = reason.strip()
        if len(reason) > REASON_MAX_CHARS:
            raise InvalidInput(
                f"{where}: the reason is at most {REASON_MAX_CHARS} characters.", field=f"{index}.reason"
            )
        if decision == "reject" and not reason:
            # §7023(f), Art 12(4): the requester is told why a correction was refused.
            raise InvalidInput(
                f"{where}: a rejection needs a reason (the requester is told it).", field=f"{index}.reason"
            )
        if decision == "accept" and not correction.declared:
            raise InvalidInput(
                f"{where}: correction {ident} ({correction.field}) cannot be accepted: the data map declares no field "
                f"that holds '{correction.field}' ('corrects: {correction.field}'). Reject it with a reason, or "
                "declare the field and read the values again.",
                field=f"{index}.decision",
            )
        cleaned.append((correction, DECISIONS[decision], reason))
    return cleaned


def _correction_run(locked: DataSubjectRequest) -> FulfilmentRun | None:
    return (
        FulfilmentRun.objects.select_for_update()
        .filter(request=locked, package_kind=PackageKind.CORRECTION)
        .order_by("-started_at", "-pk")
        .first()
    )


@transaction.atomic
def corrections_decide(*, request: DataSubjectRequest, decisions: Any, actor: Actor) -> FulfilmentRun:
    """The officer accepts or rejects corrections (some or all, any number of times while the
    run awaits decisions). Once every correction is decided, the accepted ones are sent to the
    systems and the decisions are final. 409 when nothing awaits a decision; 400 naming the item
    and field for a bad body."""
    locked = request_locked(request.pk)
    run = _correction_run(locked)
    if run is None or run.state != RunState.AWAITING_APPROVAL:
        raise CorrectionsNotDecidable(f"No corrections of {locked.reference} are awaiting a decision.")
    if not locked.is_open:
        raise CorrectionsNotDecidable(f"{locked.reference} is closed.")
    corrections = {c.pk: c for c in Correction.objects.select_for_update().filter(run=run).order_by("position")}
    cleaned = _decisions_clean(decisions, corrections)
    now = timezone.now()
    for correction, decision, reason in cleaned:
        correction.decision = decision
        correction.reason = reason
        correction.decided_by = actor.label
        correction.decided_at = now
        correction.save(update_fields=["decision", "reason", "decided_by", "decided_at"])
    complete = all(c.decision != CorrectionDecision.PENDING for c in corrections.values())
    audit_event_record(
        request=locked,
        event=event_corrections_decided(
            actor=actor,
            run_id=run.pk,
            decisions=[{"correction": c.pk, "field": c.field, "decision": d, "reason": r} for c, d, r in cleaned],
            complete=complete,
        ),
    )
    if complete:
        _corrections_apply(run, locked, list(corrections.values()))
    return run


def corrections_instructions(datamap: DataMap, corrections: list[Correction], read: set[str]) -> dict[str, Instruction]:
    """Per system, the `correct` instruction for the accepted corrections: each row read holding
    the field (by key), and for a system whose values were not read (it answers later) the
    collection's field for the person's rows (no key)."""
    instructions: dict[str, Instruction] = {}
    accepted = [c for c in corrections if c.decision == CorrectionDecision.ACCEPTED]
    for system in datamap.systems:
        items: list[dict[str, Any]] = []
        for correction in accepted:
            for collection in system.collections:
                field = collection.field_correcting(correction.field)
                if field is None:
                    continue
                if system.name in read:
                    keys = [
                        f["key"]
                        for f in correction.found
                        if f["system"] == system.name and f["collection"] == collection.name
                    ]
                else:
                    keys = [None]
                items.extend(
                    {"collection": collection.name, "key": key, "field": field.name, "value": correction.correct}
                    for key in keys
                )
        if items:
            instructions[system.name] = Instruction(action="correct", items=tuple(items), note=_note(system, items))
    return instructions


def _note(system: System, items: list[dict[str, Any]]) -> str:
    """Plain text for a human owner: which field of which collection gets which value."""
    lines = [f"Correct the person's records in {system.name} as follows (rectification, Art 16 / CCPA §7023):"]
    for item in items:
        where = f"{item['collection']}.{item['field']}" + (f" of row {item['key']}" if item["key"] is not None else "")
        lines.append(f"- {where}: {item['value']}")
    return "\n".join(lines)


def _corrections_apply(run: FulfilmentRun, request: DataSubjectRequest, corrections: list[Correction]) -> None:
    datamap = _datamap()
    if datamap.version != run.datamap_version:
        raise CorrectionsNotDecidable(
            "The data map changed since the current values were read; read them again (Start) before deciding."
        )
    system_runs = {s.system: s for s in SystemRun.objects.select_for_update().filter(run=run)}
    read = {name for name, s in system_runs.items() if s.status == SystemStatus.PLANNED}
    instructions = corrections_instructions(datamap, corrections, read)
    run.state = RunState.RUNNING
    run.approved_at = timezone.now()
    run.approvals = [{"by": c.decided_by, "at": c.decided_at.isoformat() if c.decided_at else ""} for c in corrections]
    run.save(update_fields=["state", "approved_at", "approvals"])
    now = timezone.now()
    for name, system_run in system_runs.items():
        if name not in instructions and system_run.status not in TERMINAL:
            system_run.status = SystemStatus.SKIPPED
            system_run.error = NOTHING_TO_CORRECT
            system_run.finished_at = now
            system_run.save(update_fields=["status", "error", "finished_at"])
    if instructions:
        instructions_send(run=run, instructions=instructions)
    correction_run_finish_if_complete(run.pk)


# --- The end of a run: every system confirmed or failed --------------------------------------------


def correction_run_finish_if_complete(run_id: int) -> None:
    """The outcome registered with the instruction channel for PackageKind.CORRECTION (called
    inside the transaction each time a system run reaches DONE or FAILED): once every system is
    done, failed or skipped, the run finishes, the recipients are passed on and a failure flags
    the request."""
    system_runs = list(SystemRun.objects.filter(run_id=run_id).order_by("id"))
    if any(s.status not in TERMINAL for s in system_runs):
        return
    run = FulfilmentRun.objects.select_for_update().get(pk=run_id)
    if run.package_kind != PackageKind.CORRECTION or run.state != RunState.RUNNING or run.approved_at is None:
        return
    failed = [s.system for s in system_runs if s.status == SystemStatus.FAILED]
    request = request_locked(run.request_id)
    own_done = [s for s in system_runs if s.status == SystemStatus.DONE and not _is_recipient(s)]
    # Art 19: the recipients are told once every system is corrected, and the run ends when each
    # confirmed (or failed) — told while the run still runs, so the channel carries it.
    if not failed and _recipients_pass_on(run, request, own_done):
        return
    run.state = RunState.FAILED if failed else RunState.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "finished_at"])
    corrected = sum(sum((s.instructed or {}).get("counts", {}).values()) for s in system_runs if not _is_recipient(s))
    audit_event_record(
        request=request,
        event=event_fulfilment_finished(run_id=run.pk, state=run.state, records=corrected, failed=failed),
    )
    if failed:  # the request stays open; the team sees it flagged
        request_flag(
            request_id=request.pk, reason=f"Correction failed in {', '.join(failed)}", data={"systems": failed}
        )


def _instruction_of(system_run: SystemRun) -> Instruction | None:
    return instruction_from_json(system_run.instruction) if system_run.instruction else None


def _is_recipient(system_run: SystemRun) -> bool:
    return system_run.system.startswith(RECIPIENT_RUN_PREFIX)


def _recipients_pass_on(run: FulfilmentRun, request: DataSubjectRequest, done: list[SystemRun]) -> bool:
    """Art 19: every recipient in the map of a corrected system is to be told. The registered
    propagation tells them; the timeline records which recipients of which systems, and which
    fields, were passed on (never the values). A system is passed on once: a system told again
    after a failure is passed on when it confirms, the others are not told twice."""
    try:
        datamap = _datamap()
    except runs.FulfilmentUnavailable:
        datamap = None
    fresh = [s for s in done if not (s.verification or {}).get("passed_on")]
    instructions = {s.system: i for s in fresh if (i := _instruction_of(s)) is not None and i.items}
    if not instructions:
        return False
    recipients: dict[str, list[str]] = {}
    for name in instructions:
        spec = datamap.system(name) if datamap else None
        recipients[name] = [r.name for r in spec.recipients] if spec else []
    fields = {
        name: sorted({f"{item['collection']}.{item['field']}" for item in instruction.items})
        for name, instruction in instructions.items()
    }
    told = bool(_recipients_tell)
    sent = _recipients_tell[0](run, instructions) if told else []
    now = timezone.now().isoformat()
    for system_run in fresh:
        if system_run.system in instructions:
            system_run.verification = {"read_back": system_run.kind in READING_KINDS, "passed_on": now, "told": told}
            system_run.save(update_fields=["verification"])
    audit_event_record(
        request=request,
        event=event_corrections_passed_on(run_id=run.pk, systems=recipients, fields=fields, told=told),
    )
    return bool(sent)


@transaction.atomic
def correction_system_retell(*, request: DataSubjectRequest, system: str, actor: Actor) -> SystemRun:
    """Tell a system whose correction failed the same instruction again (after its owner fixed
    what refused it); the run goes back to running until it confirms or fails again."""
    locked = request_locked(request.pk)
    if not locked.is_open:
        raise TransitionNotAllowed(f"{locked.reference} is closed.")
    run = _correction_run(locked)
    system_run = (
        SystemRun.objects.select_for_update().filter(run=run, system=system).first() if run is not None else None
    )
    if run is None or system_run is None or not system_run.instruction:
        raise InvalidInput(f"{system} was not told a correction for {locked.reference}.", field="system")
    if system_run.status != SystemStatus.FAILED:
        raise TransitionNotAllowed(
            f"{system} is {system_run.get_status_display().lower()}; only a failed system is told again."
        )
    if run.state in (RunState.FAILED, RunState.DONE):
        run.state = RunState.RUNNING
        run.finished_at = None
        run.save(update_fields=["state", "finished_at"])
    instruction_retell(system_run_id=system_run.pk)
    system_run.refresh_from_db()
    return system_run


def correction_values_purge(request_id: int) -> int:
    """Part of the `request_closed` hook: the current values read for the officer are deleted once
    the request ends (they were needed for the decision only); the decisions and reasons stay
    with the record (§7101). Returns the corrections cleared."""
    return Correction.objects.filter(run__request_id=request_id).exclude(found=[]).update(found=[])


def correction_statement_purge(request_id: int) -> None:
    """The retention purge: the statement is kept as long as the record it belongs to, no longer."""
    CorrectionStatement.objects.filter(request_id=request_id).delete()


# --- What the API and the panel show ---------------------------------------------------------------


def corrections_view(run: FulfilmentRun | None) -> list[dict[str, Any]] | None:
    """`"corrections"` of `GET …/fulfilment/`: each requested correction beside the current values
    found per system, the evidence, where the map declares it, and the decision."""
    if run is None or run.package_kind != PackageKind.CORRECTION:
        return None
    evidence = [
        {"id": d.pk, "name": d.original_name, "url": reverse("dsr:staff-document", args=[run.request.reference, d.pk])}
        for d in RequestDocument.objects.filter(
            request_id=run.request_id, kind=RequestDocument.Kind.EVIDENCE, deleted_at__isnull=True
        ).order_by("pk")
    ]
    return [
        {
            "id": c.pk,
            "position": c.position,
            "field": c.field,
            "label": field_label(c.field),
            "wrong": c.wrong,
            "correct": c.correct,
            "declared": list(c.declared),
            "applicable": bool(c.declared),
            "found": list(c.found),
            "evidence": evidence,
            "decision": c.decision,
            "reason": c.reason,
            "decided_by": c.decided_by,
            "decided_at": c.decided_at,
        }
        for c in Correction.objects.filter(run=run).order_by("position")
    ]


def latest_correction_run(request: DataSubjectRequest) -> FulfilmentRun | None:
    return (
        FulfilmentRun.objects.filter(request=request, package_kind=PackageKind.CORRECTION)
        .exclude(state=RunState.CANCELLED)
        .order_by("-started_at", "-pk")
        .first()
    )


# --- The answer to the requester -------------------------------------------------------------------


def correction_answer_message(run: FulfilmentRun, language: str) -> str:
    """In the requester's language: each correction made and where, each rejected one with the
    reason, for CCPA the statement they may send (§7023(f)), for GDPR the right to complain
    (Art 12(4)), and who received the data and is told (Art 19). No value is repeated."""
    corrections = list(Correction.objects.filter(run=run).order_by("position"))
    system_runs = {s.system: s for s in SystemRun.objects.filter(run=run)}
    request = run.request
    with translation.override(language):
        lines = [gettext("We have acted on your request to correct your personal information:")]
        rejected = False
        for c in corrections:
            label = field_label(c.field)
            if c.decision == CorrectionDecision.ACCEPTED:
                where = sorted(
                    {
                        d.split(".")[0]
                        for d in c.declared
                        if system_runs.get(d.split(".")[0]) is not None
                        and system_runs[d.split(".")[0]].status == SystemStatus.DONE
                    }
                )
                lines.append(
                    "- "
                    + gettext("%(field)s: corrected in %(systems)s.")
                    % {"field": label, "systems": ", ".join(where) or "-"}
                )
            else:
                rejected = True
                line = gettext("%(field)s: not corrected. Our reason: %(reason)s") % {
                    "field": label,
                    "reason": c.reason,
                }
                lines.append(f"- {line}")
        if rejected and request.regime == Regime.CCPA:
            lines.append(
                gettext(
                    "If you disagree, you may send us a written statement of up to 250 words saying why the "
                    "information is not accurate. We will keep it with your information. Use the form on your "
                    "request's status page."
                )
            )
        elif rejected:
            lines.append(
                gettext(
                    "If you disagree, you may complain to a data protection supervisory authority and seek a "
                    "remedy in court."
                )
            )
        try:
            datamap: DataMap | None = _datamap()
        except runs.FulfilmentUnavailable:
            datamap = None
        told = recipients_told_lines(list(system_runs.values()), datamap)
        if told:  # Art 19: each recipient of the corrected data was told, and when it confirmed
            lines.append(gettext("We told those who received your information from us of the corrections:"))
            lines.extend(told)
        lines.append(gettext("We keep a record of your request, as the law requires."))
        return "\n".join(lines)


def correction_answer_send(*, request: DataSubjectRequest, actor: Actor) -> DataSubjectRequest:
    """Complete the request with the answer built from the run (never typed by hand): in part
    when a correction was rejected; a refusal (with the reasons) when every one was."""
    run = latest_correction_run(request)
    if run is None or run.state != RunState.DONE:
        raise TransitionNotAllowed(
            f"The corrections of {request.reference} are not applied yet; the answer waits for them."
        )
    decisions = set(Correction.objects.filter(run=run).values_list("decision", flat=True))
    message = correction_answer_message(run, request.language)
    if decisions == {CorrectionDecision.REJECTED}:
        return request_deny(request=request, actor=actor, reason_category=DenialReason.OTHER, message=message)
    return request_complete(
        request=request,
        actor=actor,
        message=message,
        outcome=Outcome.COMPLIED_IN_PART if CorrectionDecision.REJECTED in decisions else Outcome.COMPLIED,
    )


# --- The requester's statement (CCPA §7023(f)) -----------------------------------------------------


def statement_allowed(request: DataSubjectRequest) -> bool:
    """A CCPA requester whose correction was rejected, once the answer is sent."""
    if request.regime != Regime.CCPA or request.request_type != RequestType.RECTIFICATION:
        return False
    if request.status not in (Status.COMPLETED, Status.DENIED):
        return False
    run = latest_correction_run(request)
    return run is not None and Correction.objects.filter(run=run, decision=CorrectionDecision.REJECTED).exists()


@transaction.atomic
def correction_statement_submit(*, request: DataSubjectRequest, text: str) -> CorrectionStatement:
    """Keep the requester's statement with the record and put it on the timeline. One per
    request; at most 250 words."""
    locked = request_locked(request.pk)
    if not statement_allowed(locked):
        raise TransitionNotAllowed(gettext("A statement can be sent only about a correction we did not make."))
    if CorrectionStatement.objects.filter(request=locked).exists():
        raise TransitionNotAllowed(gettext("We already have your statement; it is kept with your request."))
    text = (text or "").strip()
    if not text:
        raise InvalidInput(gettext("Write your statement."), field="statement")
    words = len(text.split())
    if words > STATEMENT_MAX_WORDS:
        raise InvalidInput(
            gettext("A statement is at most %(max)d words; yours has %(words)d.")
            % {"max": STATEMENT_MAX_WORDS, "words": words},
            field="statement",
        )
    if len(text) > STATEMENT_MAX_CHARS:
        raise InvalidInput(
            gettext("A statement is at most %(max)d characters.") % {"max": STATEMENT_MAX_CHARS}, field="statement"
        )
    statement = CorrectionStatement.objects.create(request=locked, text=text, words=words, submitted_at=timezone.now())
    audit_event_record(
        request=locked,
        event=event_correction_statement_received(actor=Actor.requester(locked.email), words=words, text=text),
    )
    return statement


runs.correction_starter_register(correction_start)
instruction_outcome_register(PackageKind.CORRECTION, correction_run_finish_if_complete)

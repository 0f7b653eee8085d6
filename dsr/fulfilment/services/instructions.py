"""The instruction channel: tell a system to do something to a person's records — erase, restrict,
opt out of sale or sharing, limit the use of sensitive data, correct — and record when it confirmed.
One channel for every kind of system and every service that tells (erasure, corrections,
propagation): the service stores an `Instruction` on the system's run (`instruction_dispatch`, or
`instructions_send` for several), a task (ids only) claims the system under its lock and calls its
connector's `instruct` — which dispatches to the handler registered for the (kind, action) — and the
answer is recorded: confirmed now (a database transaction, an http 200 that says done), waiting for
a later confirmation (an http callback, the owner's task: `instruction_confirm` /
`instruction_refuse`), or failed (tried again with backoff while the error may pass). Each step is
on the request's timeline; the owning service hears of each outcome through the function it
registered for its run's package kind, inside the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from dsr.fulfilment.connectors import connector_for
from dsr.fulfilment.connectors.base import INSTRUCTION_ACTIONS, ConnectorError, Instructed, Instruction
from dsr.fulfilment.datamap import DataMap, System
from dsr.fulfilment.models import FulfilmentRun, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import runs
from dsr.services.audit import audit_event_record
from dsr.services.events import event_instruction_confirmed, event_instruction_failed, event_instruction_sent
from dsr.services.transitions import request_locked

log = logging.getLogger(__name__)

OUTCOMES = frozenset({SystemStatus.DONE, SystemStatus.FAILED})
# Stored in SystemRun.instructed["by"] when the connector confirmed in the same call.
BY_CONNECTOR = "connector"


def instruction_to_json(instruction: Instruction) -> dict[str, Any]:
    return {"action": instruction.action, "items": [dict(i) for i in instruction.items], "note": instruction.note}


def instruction_from_json(data: dict[str, Any]) -> Instruction:
    return Instruction(
        action=data["action"], items=tuple(dict(i) for i in data.get("items", ())), note=data.get("note", "")
    )


# --- What the owning services and the tasks module register ------------------------------------------

_queue: list[Callable[[int, float], Any]] = []
_outcome_handlers: dict[str, Callable[[int], None]] = {}
_system_resolvers: list[Callable[[DataMap, str], System | None]] = []
# A task not claimed this long after it was queued (or after its backoff) is queued again.
REQUEUE_AFTER = timedelta(minutes=2)


def queue_register(function: Callable[[int, float], Any]) -> None:
    """The tasks module: `function(system_run_id, countdown)` queues `instruction_execute`."""
    _queue[:] = [function]


def instruction_outcome_register(package_kind: str, fn: Callable[[int], None]) -> None:
    """`fn(run_id)` is called inside the transaction each time a system run of a run of that kind
    reaches DONE or FAILED (the owning service finishes its run when every system has)."""
    _outcome_handlers[package_kind] = fn


def system_resolver_register(fn: Callable[[DataMap, str], System | None]) -> None:
    """A name that is not a system of the map (a recipient told through its contact, say) is
    resolved by the registered functions, in order; the first that answers a System wins."""
    if fn not in _system_resolvers:
        _system_resolvers.append(fn)


def system_resolve(datamap: DataMap, name: str) -> System | None:
    system = datamap.system(name)
    if system is not None:
        return system
    for resolver in _system_resolvers:
        system = resolver(datamap, name)
        if system is not None:
            return system
    return None


def _enqueue(system_run_id: int, countdown: float = 0) -> None:
    if not _queue:  # the tasks module registers on import (AppConfig.ready)
        raise RuntimeError("no queue for instructions")
    function = _queue[0]
    transaction.on_commit(lambda: function(system_run_id, countdown))


# --- Sending ---------------------------------------------------------------------------------------


def instruction_dispatch(*, system_run: SystemRun, instruction: Instruction) -> None:
    """Inside the caller's transaction, `system_run` locked: store the instruction and queue the
    task that tells the system (after commit). A system already confirmed is not told again."""
    if instruction.action not in INSTRUCTION_ACTIONS:
        raise ValueError(f"unknown instruction action '{instruction.action}'")
    if system_run.status == SystemStatus.DONE and system_run.confirmed_at:
        return
    system_run.instruction = instruction_to_json(instruction)
    system_run.instructed = {}
    system_run.status = SystemStatus.PENDING
    system_run.error = ""
    system_run.attempts = 0
    # Not before: the sweep queues it again if no worker has claimed it by then (a lost task).
    system_run.lease_until = timezone.now() + REQUEUE_AFTER
    system_run.requested_at = None
    system_run.finished_at = None
    system_run.save(
        update_fields=[
            "instruction", "instructed", "status", "error", "attempts", "lease_until", "requested_at", "finished_at",
        ]
    )  # fmt: skip
    _enqueue(system_run.pk)


def instructions_send(*, run: FulfilmentRun, instructions: dict[str, Instruction]) -> list[SystemRun]:
    """Tell each named system (a map system, or a name a resolver knows) its instruction: the
    missing SystemRuns of `run` are created, each is dispatched. Inside the caller's transaction."""
    datamap = runs._datamap()
    existing = {s.system: s for s in SystemRun.objects.select_for_update().filter(run=run)}
    sent = []
    for name, instruction in instructions.items():
        system_run = existing.get(name)
        if system_run is None:
            system = system_resolve(datamap, name)
            if system is None:
                raise ValueError(f"{name} is not a system of the data map")
            system_run = SystemRun.objects.create(run=run, system=name, kind=system.kind)
        instruction_dispatch(system_run=system_run, instruction=instruction)
        sent.append(system_run)
    return sent


# --- The task --------------------------------------------------------------------------------------


def _claim(system_run_id: int) -> SystemRun | None:
    """Take the system for this attempt, or None when there is nothing to do: a redelivered task
    (already told, confirmed, failed, or claimed by a live attempt) tells nothing twice."""
    now = timezone.now()
    with transaction.atomic():
        system_run = SystemRun.objects.select_for_update().select_related("run__request").get(pk=system_run_id)
        if not system_run.instruction or system_run.run.state != RunState.RUNNING:
            return None
        if system_run.status == SystemStatus.RUNNING and system_run.lease_until and system_run.lease_until <= now:
            pass  # the attempt that held it died before it recorded an answer: tell it again
        elif system_run.status != SystemStatus.PENDING:
            return None
        system_run.status = SystemStatus.RUNNING
        system_run.attempts += 1
        system_run.started_at = system_run.started_at or now
        system_run.lease_until = now + timedelta(seconds=settings.DSR_FULFILMENT_LEASE_SECONDS)
        system_run.save(update_fields=["status", "attempts", "started_at", "lease_until"])
        return system_run


def instruction_execute(*, system_run_id: int) -> None:
    system_run = _claim(system_run_id)
    if system_run is None:
        return
    instruction = instruction_from_json(system_run.instruction)
    try:
        datamap = runs._datamap()
        system = system_resolve(datamap, system_run.system)
        if system is None:
            raise ConnectorError(f"{system_run.system} is no longer in the data map")
        if system_run.kind and system_run.kind != system.kind:
            # The owning service chose another kind to carry it (an sql system with no flag for the
            # action is told through its owner: `manual`), recorded on the run when it was created.
            system = replace(system, kind=system_run.kind)
    except ConnectorError as error:
        _failed(system_run.pk, str(error), retry=False, by=BY_CONNECTOR)
        return
    except runs.FulfilmentUnavailable as error:
        _failed(system_run.pk, error.message, retry=False, by=BY_CONNECTOR)
        return
    subject = runs.subject_for(system_run)
    preparer = runs._subject_preparers.get(system.kind)  # http: the callback URL and a fresh token
    if preparer is not None:
        subject = preparer(system_run, subject)
    retries = system.connection.get("retries")
    try:
        answer = connector_for(system).instruct(subject, instruction)
    except ConnectorError as error:
        _failed(system_run.pk, str(error), retry=error.retry, retries=retries, by=BY_CONNECTOR)
        return
    except Exception as error:  # a handler's bug fails its system, visibly, never the others
        log.exception("instruction %s to %s failed", instruction.action, system.name)
        _failed(system_run.pk, f"unexpected error: {type(error).__name__}: {error}", retry=True, retries=retries,
                by=BY_CONNECTOR)  # fmt: skip
        return
    _answered(system_run.pk, answer)


def _locked(system_run_id: int) -> tuple[SystemRun, Any]:
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    return system_run, request_locked(system_run.run.request_id)


def _outcome(system_run: SystemRun) -> None:
    handler = _outcome_handlers.get(system_run.run.package_kind)
    if handler is not None:
        handler(system_run.run_id)


@transaction.atomic
def _answered(system_run_id: int, answer: Instructed) -> None:
    system_run, request = _locked(system_run_id)
    if system_run.status != SystemStatus.RUNNING:  # a fast callback already confirmed it
        return
    now = timezone.now()
    action = system_run.instruction["action"]
    system_run.lease_until = None
    system_run.error = ""
    if answer.confirmed:
        _confirmed(system_run, request, counts=answer.counts, by=BY_CONNECTOR, now=now)
        return
    system_run.status = SystemStatus.WAITING
    system_run.requested_at = now
    system_run.instructed = {
        "confirmed": False,
        "pending": answer.pending,
        "counts": {},
        "by": "",
        "at": now.isoformat(),
    }
    system_run.save(update_fields=["status", "requested_at", "instructed", "lease_until", "error"])
    audit_event_record(
        request=request,
        event=event_instruction_sent(
            run_id=system_run.run_id, system=system_run.system, kind=system_run.kind, action=action,
            pending=answer.pending,
        ),
    )  # fmt: skip


def _confirmed(system_run: SystemRun, request: Any, *, counts: dict[str, int], by: str, now: Any) -> None:
    system_run.status = SystemStatus.DONE
    system_run.confirmed_at = now
    system_run.finished_at = now
    system_run.lease_until = None
    system_run.error = ""
    system_run.records = sum(int(v) for v in counts.values())
    system_run.instructed = {
        "confirmed": True,
        "pending": system_run.instructed.get("pending", ""),
        "counts": dict(counts),
        "by": by,
        "at": now.isoformat(),
    }
    system_run.save(
        update_fields=["status", "confirmed_at", "finished_at", "lease_until", "error", "records", "instructed"]
    )
    audit_event_record(
        request=request,
        event=event_instruction_confirmed(
            run_id=system_run.run_id, system=system_run.system, action=system_run.instruction["action"],
            counts=dict(counts), by=by,
        ),
    )  # fmt: skip
    _outcome(system_run)


@transaction.atomic
def _failed(system_run_id: int, error: str, *, retry: bool, by: str, retries: int | None = None) -> None:
    """A failed attempt: told again with backoff while the system's retries allow and the error
    may pass, else FAILED with the error (the owning service hears of it)."""
    system_run, request = _locked(system_run_id)
    if system_run.status in OUTCOMES:
        return
    limit = settings.DSR_FULFILMENT_RETRIES if retries is None else int(retries)
    again = retry and system_run.attempts <= limit
    backoff = min(settings.DSR_FULFILMENT_RETRY_SECONDS * 2 ** max(system_run.attempts - 1, 0), 900)
    system_run.error = error[:2000]
    system_run.lease_until = timezone.now() + timedelta(seconds=backoff) + REQUEUE_AFTER if again else None
    system_run.status = SystemStatus.PENDING if again else SystemStatus.FAILED
    system_run.finished_at = None if again else timezone.now()
    system_run.save(update_fields=["error", "lease_until", "status", "finished_at"])
    audit_event_record(
        request=request,
        event=event_instruction_failed(
            run_id=system_run.run_id, system=system_run.system, action=system_run.instruction.get("action", ""),
            error=system_run.error, attempts=system_run.attempts, final=not again, by=by,
        ),
    )  # fmt: skip
    if again:
        _enqueue(system_run.pk, countdown=backoff)
    else:
        _outcome(system_run)


# --- Later answers ---------------------------------------------------------------------------------


@transaction.atomic
def instruction_confirm(*, system_run_id: int, counts: dict[str, int], by: str) -> None:
    """A later confirmation (an http callback, a manual owner). A second one changes nothing;
    one for a system that is not waiting (never told, failed, its run cancelled) is ignored."""
    system_run, request = _locked(system_run_id)
    if not system_run.instruction or system_run.status in OUTCOMES:
        return
    if system_run.run.state != RunState.RUNNING:
        return
    _confirmed(system_run, request, counts=counts, by=by, now=timezone.now())


def instruction_refuse(*, system_run_id: int, error: str, by: str) -> None:
    """The system or its owner says it could not: FAILED with their words, not retried (it did
    answer); the officer can tell it again."""
    with transaction.atomic():
        system_run = SystemRun.objects.select_for_update().get(pk=system_run_id)
        if not system_run.instruction or system_run.status in OUTCOMES:
            return
    _failed(system_run_id, error, retry=False, by=by)


@transaction.atomic
def instruction_retell(*, system_run_id: int) -> SystemRun:
    """The officer tells a failed system again (same instruction, attempts counted afresh)."""
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    if not system_run.instruction:
        raise ValueError(f"{system_run.system} was not told anything in this run")
    if system_run.status == SystemStatus.FAILED:
        instruction_dispatch(system_run=system_run, instruction=instruction_from_json(system_run.instruction))
    return system_run


# --- Reads for the sweep ---------------------------------------------------------------------------


def instructions_waiting(*, older_than: timedelta) -> QuerySet[SystemRun]:
    """Systems told longer ago than `older_than` that have not confirmed: reminders, escalation."""
    cutoff = timezone.now() - older_than
    return (
        SystemRun.objects.filter(status=SystemStatus.WAITING, run__state=RunState.RUNNING, requested_at__lte=cutoff)
        .exclude(instruction={})
        .select_related("run__request")
        .order_by("requested_at", "pk")
    )


def instructions_stalled_requeue() -> int:
    """A system told nothing yet (its task lost with a broker restart) or claimed past its lease
    (the worker died) is queued again; the claim makes a duplicate harmless."""
    stalled = (
        SystemRun.objects.filter(run__state=RunState.RUNNING, status__in=[SystemStatus.PENDING, SystemStatus.RUNNING])
        .exclude(instruction={})
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now()))
        .values_list("pk", flat=True)
    )
    count = 0
    for system_run_id in stalled:
        with transaction.atomic():
            _enqueue(system_run_id)
        count += 1
    return count

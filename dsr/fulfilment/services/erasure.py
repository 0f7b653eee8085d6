"""An erasure run: preview → approval → execution → verification → answer (issue 11).

`erasure_start` (called by `runs.fulfilment_start` for an erasure request: one door) records the
run and queues one planning task per sql, django and http system: an sql/django connector finds
the person and rehearses its plan in a transaction that is rolled back; an http system is asked
`find` for the keys and planned by the map's strategies. A manual system is planned at once by
identities: its owner erases the person's records in the collections listed. When every system
is planned the run stops in `awaiting_approval`. `erasure_approve` records an officer's approval
(two different officers under DSR_ERASURE_FOUR_EYES) and, after the cool-off
(DSR_ERASURE_DELAY_HOURS, clamped to end before the deadline; the requester may cancel meanwhile),
one execution task per system: an sql/django connector runs the approved plan in one transaction,
then a verification pass finds the person again; an http or manual system is told to erase
through the instruction channel (services/instructions.py) and is erased once it confirms — an
http system then verified by `find` again, a manual one by its owner's confirmation. A plan whose
data changed is rebuilt and approval asked again; a failing system is rolled back by its
connector and shown failed while the others go on. Each task takes ids, claims its system under a
lock and is a no-op when redelivered."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext

from dsr.errors import TransitionNotAllowed
from dsr.fulfilment.connectors import connector_for
from dsr.fulfilment.connectors.base import (
    Connector,
    ConnectorError,
    ErasurePlan,
    Instruction,
    PlanChanged,
    RowPlan,
    Subject,
)
from dsr.fulfilment.connectors.erasure import REWRITES, erasure_verify, rows_plan
from dsr.fulfilment.datamap import RECIPIENT_RUN_PREFIX, DataMap, System
from dsr.fulfilment.models import ErasureLedgerEntry, FulfilmentRun, PackageKind, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import instructions, runs
from dsr.fulfilment.services.propagation import recipient_name, recipients_told_lines
from dsr.models import DataSubjectRequest, Outcome
from dsr.services.audit import Actor, audit_event_record
from dsr.services.delivery import request_flag
from dsr.services.events import (
    event_erasure_approved,
    event_erasure_cancelled,
    event_erasure_executed,
    event_erasure_failed,
    event_erasure_plan_changed,
    event_erasure_planned,
    event_erasure_replayed,
    event_erasure_scheduled,
    event_erasure_verified,
    event_fulfilment_finished,
    event_fulfilment_started,
)
from dsr.services.staff_actions import request_cancel, request_complete
from dsr.services.transitions import request_locked

log = logging.getLogger(__name__)

# The kinds whose connector plans and erases in one transaction; http and manual systems are
# told to erase through the instruction channel and confirm later.
ERASING_KINDS = frozenset({"sql", "django"})
INSTRUCTED_KINDS = frozenset({"http", "manual"})

# CCPA §1798.105(c)(1), §7022(b)(3) and GDPR Art 17(2), Art 19: once every system of the business
# has erased the person, each recipient the map lists for those systems (service providers,
# contractors, third parties) is told to delete what it received, and the run is done only when
# each confirmed. The teller is registered by wiring (services/propagation.recipients_tell).
RecipientsTell = Callable[..., list[SystemRun]]
_recipients_tell: list[RecipientsTell] = []
RECIPIENTS_ERASE_NOTE = (
    "Delete the personal information of the person identified here that we disclosed to you, and any "
    "copies, and confirm when it is done (CCPA §1798.105(c), §7022(b)(3); GDPR Art 17(2) and Art 19). "
    "Information you must keep by law may be kept; say which."
)


def erasure_recipients_register(function: RecipientsTell) -> None:
    """`function(run=, instruction=, systems=)` tells each recipient of `systems` the instruction
    (one system run per recipient, `recipient:<name>`), inside the caller's transaction."""
    _recipients_tell[:] = [function]


def is_recipient(system_run: SystemRun) -> bool:
    return system_run.system.startswith(RECIPIENT_RUN_PREFIX)


TERMINAL = frozenset({SystemStatus.DONE, SystemStatus.FAILED, SystemStatus.SKIPPED})
# How each kind's erasure is proved, as the plan and the answer say it.
VERIFIED_BY = {
    "sql": "searched again after the erasure (find): only what the plan keeps may be left",
    "django": "searched again after the erasure (find): only what the plan keeps may be left",
    "http": "told by a signed call; once it confirms, searched again (find): only what the plan keeps may be left",
    "manual": "its owner erases the records and confirms it on their task link (the owner's confirmation is the proof)",
}
# The cool-off never runs into the deadline: execution starts at the latest this long before the
# start of the request's due date (business time zone), so systems that confirm later still can.
ERASE_BEFORE_DUE_HOURS = 24


class ErasureNotApprovable(TransitionNotAllowed):
    code = "erasure_not_approvable"


# --- The plan as stored (JSON) and back ------------------------------------------------------------


def plan_to_json(plan: ErasurePlan) -> dict[str, Any]:
    return {
        "system": plan.system,
        "rows": [
            {
                "collection": r.collection,
                "keys": list(r.keys),
                "delete": r.delete,
                "updates": [list(u) for u in r.updates],
                "kept": [list(k) for k in r.kept],
                "note": r.note,
            }
            for r in plan.rows
        ],
        "problems": list(plan.problems),
        "counts": plan.counts,
    }


def plan_from_json(data: dict[str, Any]) -> ErasurePlan:
    return ErasurePlan(
        system=data["system"],
        rows=tuple(
            RowPlan(
                collection=r["collection"],
                keys=tuple(r["keys"]),
                delete=r["delete"],
                updates=tuple((f, s) for f, s in r["updates"]),
                kept=tuple((f, why) for f, why in r["kept"]),
                note=r.get("note", ""),
            )
            for r in data["rows"]
        ),
        problems=tuple(data.get("problems", ())),
        counts=data.get("counts", {}),
    )


# --- Queueing (ids only, after commit) -------------------------------------------------------------

_queue: dict[str, Callable[..., Any]] = {}


def queue_register(name: str, function: Callable[..., Any]) -> None:
    _queue[name] = function


def _enqueue(name: str, system_run_id: int, *, countdown: float = 0) -> None:
    function = _queue.get(name)
    if function is None:  # the tasks module registers on import (AppConfig.ready)
        raise RuntimeError(f"no queue for {name}")
    if countdown > 0:
        transaction.on_commit(lambda: function(system_run_id, countdown=countdown))
    else:
        transaction.on_commit(lambda: function(system_run_id))


def _subject(system_run: SystemRun) -> Subject:
    return runs.subject_for(system_run)


def _datamap() -> DataMap:
    return runs._datamap()


# --- Start: one planning task per system -----------------------------------------------------------


def erasure_start(*, locked: DataSubjectRequest, actor: Actor) -> FulfilmentRun:
    """Called by runs.fulfilment_start inside its transaction, the request locked and checked. A
    run still awaiting approval is replaced (the officer plans again, e.g. after fixing a problem)."""
    datamap = _datamap()
    runs.runs_awaiting_cancel(locked)
    if FulfilmentRun.objects.filter(request=locked, state=RunState.DONE, package_kind=PackageKind.ERASURE).exists():
        raise TransitionNotAllowed(f"The erasure for {locked.reference} is done; send the answer.")
    run = runs.run_create(
        locked=locked, datamap=datamap, package_kind=PackageKind.ERASURE, actor=actor,
        busy=f"An erasure for {locked.reference} is already running.",
    )  # fmt: skip
    system_runs = SystemRun.objects.bulk_create(
        [SystemRun(run=run, system=s.name, kind=s.kind) for s in datamap.systems]
    )
    audit_event_record(
        request=locked,
        event=event_fulfilment_started(
            actor=actor,
            run_id=run.pk,
            datamap_version=datamap.version,
            systems=[s.name for s in datamap.systems],
            package_kind=run.package_kind,
            since=None,
        ),
    )
    for system_run in system_runs:
        if system_run.kind == "manual":
            # Nothing to ask before approval: the owner erases by identities, planned from the map.
            spec = datamap.system(system_run.system)
            assert spec is not None
            _system_planned_now(system_run, manual_plan(spec))
        else:
            _enqueue("plan", system_run.pk)
    _planning_finish_if_complete(run.pk)
    return run


def manual_plan(system: System) -> ErasurePlan:
    """A manual system's plan: per collection what the owner does to the person's records, found
    by their identities (nobody can list the keys beforehand), by the map's strategies. A personal
    field without a strategy is a problem, as for any system."""
    rows: list[RowPlan] = []
    problems: list[str] = []
    for collection in system.collections:
        where = f"{system.name}.{collection.name}"
        delete = any(f.erasure == "delete" for f in collection.fields)
        updates = [(f.name, f.erasure) for f in collection.fields if f.erasure in REWRITES]
        kept = [(f.name, f.keep_reason) for f in collection.fields if f.erasure == "keep"]
        if not delete:
            for f in collection.fields:
                if f.personal and not f.erasure and f.name != collection.primary_key:
                    problems.append(f"no erasure strategy in the map for {where}.{f.name}")
        found_by = ", ".join(f"{kind} in {field}" for kind, field in collection.identities.items())
        rows.append(
            RowPlan(
                collection=collection.name,
                keys=(),
                delete=delete,
                updates=() if delete else tuple(sorted(updates)),
                kept=() if delete else tuple(sorted(kept)),
                note=f"the owner {'deletes' if delete else 'erases the fields of'} the person's records, found by "
                f"{found_by or 'their identities'}",
            )
        )
    return ErasurePlan(system=system.name, rows=tuple(rows), problems=tuple(problems))


def http_plan(system: System, connector: Connector, subject: Subject) -> ErasurePlan:
    """An http system's plan: the keys it says it holds (`find`), planned by the map's strategies.
    Nothing is rehearsed there: the counts are what the plan would change."""
    found = connector.find(subject)
    rows, problems = rows_plan(system, found.keys)
    counts = {
        r.collection: {
            "deleted": len(r.keys) if r.delete else 0,
            "updated": 0 if r.delete or not r.updates else len(r.keys),
            "kept": 0 if r.delete else len(r.keys),
        }
        for r in rows
    }
    return ErasurePlan(system=system.name, rows=tuple(rows), problems=tuple(problems), counts=counts)


def _system_planned_now(system_run: SystemRun, plan: ErasurePlan) -> None:
    system_run.plan = {**plan_to_json(plan), "verified_by": VERIFIED_BY.get(system_run.kind, "")}
    system_run.plan_digest = plan.digest()
    system_run.status = SystemStatus.PLANNED
    system_run.save(update_fields=["plan", "plan_digest", "status"])


def _claim(system_run_id: int, *, executing: bool) -> SystemRun | None:
    """Take the system for this attempt, or None when there is nothing to do: a redelivered task
    (the system already planned, erased or failed, or claimed by a live attempt) does no work twice."""
    now = timezone.now()
    with transaction.atomic():
        system_run = SystemRun.objects.select_for_update().select_related("run__request").get(pk=system_run_id)
        run = system_run.run
        if run.package_kind != PackageKind.ERASURE or run.state != RunState.RUNNING:
            return None
        if executing != (run.approved_at is not None):
            return None
        if executing and run.erase_after is not None and run.erase_after > now:
            return None  # still in the cool-off: the task came early (the sweep runs it when due)
        ready = SystemStatus.PLANNED if executing else SystemStatus.PENDING
        if system_run.status == SystemStatus.RUNNING and system_run.lease_until and system_run.lease_until <= now:
            pass  # the attempt that held it died: take it again (the connector's transaction rolled back)
        elif system_run.status != ready:
            return None
        system_run.status = SystemStatus.RUNNING
        system_run.attempts += 1
        system_run.started_at = system_run.started_at or now
        system_run.lease_until = now + timedelta(seconds=settings.DSR_FULFILMENT_LEASE_SECONDS)
        system_run.save(update_fields=["status", "attempts", "started_at", "lease_until"])
        return system_run


def _system_spec(system_run: SystemRun) -> tuple[System, Connector]:
    datamap = _datamap()
    if datamap.version != system_run.run.datamap_version:
        raise ConnectorError(
            f"the data map changed since this erasure was planned (version {system_run.run.datamap_version[:12]} → "
            f"{datamap.version[:12]}); plan it again"
        )
    system = datamap.system(system_run.system)
    if system is None:
        raise ConnectorError(f"{system_run.system} is no longer in the data map")
    return system, connector_for(system)


def erasure_system_plan(*, system_run_id: int) -> None:
    """A planning task: the connector rehearses the plan (nothing changes) and it is stored."""
    system_run = _claim(system_run_id, executing=False)
    if system_run is None:
        return
    try:
        system, connector = _system_spec(system_run)
        if system.kind == "http":
            plan = http_plan(system, connector, _subject(system_run))
        else:
            plan = connector.erase_plan(_subject(system_run))
    except Exception as error:  # a connector's failure or bug fails its system, visibly
        if not isinstance(error, ConnectorError):
            log.exception("erasure plan of %s failed", system_run.system)
        _system_failed(system_run.pk, stage="plan", error=_error_text(error))
        return
    _system_planned(system_run.pk, plan)


def _error_text(error: Exception) -> str:
    if isinstance(error, ConnectorError):
        return str(error)
    return f"unexpected error: {type(error).__name__}: {error}"


@transaction.atomic
def _system_planned(system_run_id: int, plan: ErasurePlan) -> None:
    system_run = SystemRun.objects.select_for_update().get(pk=system_run_id)
    if system_run.status != SystemStatus.RUNNING:
        return
    system_run.plan = {**plan_to_json(plan), "verified_by": VERIFIED_BY.get(system_run.kind, "")}
    system_run.plan_digest = plan.digest()
    system_run.records = sum(len(r.keys) for r in plan.rows)
    system_run.status = SystemStatus.PLANNED
    system_run.error = ""
    system_run.lease_until = None
    system_run.save(update_fields=["plan", "plan_digest", "records", "status", "error", "lease_until"])
    _planning_finish_if_complete(system_run.run_id)


@transaction.atomic
def _system_failed(system_run_id: int, *, stage: str, error: str) -> None:
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    if system_run.status in TERMINAL:
        return
    request = request_locked(system_run.run.request_id)
    system_run.status = SystemStatus.FAILED
    system_run.error = error[:2000]
    system_run.lease_until = None
    system_run.finished_at = timezone.now()
    system_run.save(update_fields=["status", "error", "lease_until", "finished_at"])
    audit_event_record(
        request=request,
        event=event_erasure_failed(run_id=system_run.run_id, system=system_run.system, stage=stage, error=error),
    )
    if stage == "plan":
        _planning_finish_if_complete(system_run.run_id)
    else:
        _execution_finish_if_complete(system_run.run_id)


def plan_problems(system_runs: list[SystemRun]) -> list[str]:
    """What blocks approval: a system whose plan failed, and each problem a rehearsal found."""
    problems = []
    for system_run in system_runs:
        if system_run.status == SystemStatus.FAILED and not system_run.plan:
            problems.append(f"{system_run.system}: could not be planned: {system_run.error}")
        problems.extend(f"{system_run.system}: {p}" for p in system_run.plan.get("problems", []))
    return problems


def _planning_finish_if_complete(run_id: int) -> None:
    system_runs = list(SystemRun.objects.filter(run_id=run_id).order_by("id"))
    if any(s.status in (SystemStatus.PENDING, SystemStatus.RUNNING) for s in system_runs):
        return
    run = FulfilmentRun.objects.select_for_update().get(pk=run_id)
    if run.state != RunState.RUNNING or run.approved_at is not None:
        return
    run.state = RunState.AWAITING_APPROVAL
    run.save(update_fields=["state"])
    audit_event_record(
        request=request_locked(run.request_id),
        event=event_erasure_planned(
            run_id=run.pk,
            systems={s.system: s.plan_digest for s in system_runs if s.status == SystemStatus.PLANNED},
            problems=plan_problems(system_runs),
        ),
    )


# --- Approval --------------------------------------------------------------------------------------


def approvals_needed() -> int:
    return 2 if settings.DSR_ERASURE_FOUR_EYES else 1


@transaction.atomic
def erasure_approve(*, request: DataSubjectRequest, actor: Actor, user_id: int | None) -> FulfilmentRun:
    """An officer approves the plan shown. 409 when nothing awaits approval, the plan has problems,
    or (four eyes) the same officer approves twice. The last approval needed queues execution."""
    locked = request_locked(request.pk)
    run = (
        FulfilmentRun.objects.select_for_update()
        .filter(request=locked, package_kind=PackageKind.ERASURE)
        .order_by("-started_at", "-pk")
        .first()
    )
    if run is None or run.state != RunState.AWAITING_APPROVAL:
        raise ErasureNotApprovable(f"No erasure plan for {locked.reference} is awaiting approval.")
    if not locked.is_open:
        raise ErasureNotApprovable(f"{locked.reference} is closed.")
    system_runs = list(SystemRun.objects.select_for_update().filter(run=run).order_by("id"))
    problems = plan_problems(system_runs)
    if problems:
        raise ErasureNotApprovable(
            "The plan cannot be approved while it has problems: " + "; ".join(problems) + ". Fix them and plan again."
        )
    if any(a.get("user") == user_id and user_id is not None for a in run.approvals):
        raise ErasureNotApprovable("You have already approved this plan; a second officer must approve it too.")
    needed = approvals_needed()
    run.approvals = [*run.approvals, {"by": actor.label, "user": user_id, "at": timezone.now().isoformat()}]
    digests = {s.system: s.plan_digest for s in system_runs if s.status == SystemStatus.PLANNED}
    fields = ["approvals"]
    if len(run.approvals) >= needed:
        run.state = RunState.RUNNING
        run.approved_at = timezone.now()
        fields += ["state", "approved_at"]
    run.save(update_fields=fields)
    audit_event_record(
        request=locked,
        event=event_erasure_approved(
            actor=actor, run_id=run.pk, approvals=len(run.approvals), needed=needed, digests=digests
        ),
    )
    if run.approved_at is not None:
        countdown = _cool_off_schedule(run, locked)
        for system_run in system_runs:
            if system_run.status == SystemStatus.PLANNED:
                # With a cool-off the task waits (a countdown); the sweep runs any lost one when due.
                _enqueue("erase", system_run.pk, countdown=countdown)
        _execution_finish_if_complete(run.pk)
    return run


# --- The cool-off ----------------------------------------------------------------------------------


def erase_latest_start(due_date) -> datetime:
    """The latest moment an approved erasure may start: ERASE_BEFORE_DUE_HOURS before the start
    of the request's due date in the business's time zone, so it ends before the legal deadline."""
    start_of_due = datetime.combine(due_date, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    return start_of_due - timedelta(hours=ERASE_BEFORE_DUE_HOURS)


def _cool_off_schedule(run: FulfilmentRun, request: DataSubjectRequest) -> float:
    """Set when the approved erasure runs (now + DSR_ERASURE_DELAY_HOURS, never past the latest
    start the deadline allows: clamped, and the timeline says so). Returns the seconds to wait."""
    hours = settings.DSR_ERASURE_DELAY_HOURS
    if hours <= 0:
        return 0
    now = timezone.now()
    latest = erase_latest_start(run.due_date)
    wanted = now + timedelta(hours=hours)
    erase_after = max(now, min(wanted, latest))
    run.erase_after = erase_after
    run.save(update_fields=["erase_after"])
    audit_event_record(
        request=request,
        event=event_erasure_scheduled(
            run_id=run.pk,
            erase_after=erase_after.isoformat(),
            delay_hours=hours,
            clamped=erase_after < wanted,
            latest=latest.isoformat(),
        ),
    )
    return max(0.0, (erase_after - now).total_seconds())


def erasure_waiting(run: FulfilmentRun | None) -> bool:
    """The approved erasure is in its cool-off: nothing has run yet and it may still be cancelled."""
    return (
        run is not None
        and run.package_kind == PackageKind.ERASURE
        and run.state == RunState.RUNNING
        and run.approved_at is not None
        and run.erase_after is not None
        and run.erase_after > timezone.now()
    )


def erasure_pending_for(request: DataSubjectRequest) -> FulfilmentRun | None:
    """The request's erasure run in its cool-off, if any (what the status page offers to cancel)."""
    run = (
        FulfilmentRun.objects.filter(request=request, package_kind=PackageKind.ERASURE)
        .order_by("-started_at", "-pk")
        .first()
    )
    return run if erasure_waiting(run) else None


@transaction.atomic
def erasure_cancel(*, request: DataSubjectRequest, actor: Actor, reason: str) -> FulfilmentRun:
    """The requester cancels an approved erasure during its cool-off: the run is cancelled (nothing
    was erased: no system has started), the timeline records it, and the request is cancelled
    through the status door (request_cancel, which tells the requester). 409 once it has started."""
    locked = request_locked(request.pk)
    run = (
        FulfilmentRun.objects.select_for_update()
        .filter(request=locked, package_kind=PackageKind.ERASURE)
        .order_by("-started_at", "-pk")
        .first()
    )
    if not erasure_waiting(run) or not locked.is_open:
        raise TransitionNotAllowed(gettext("The deletion has already started, or there is none to cancel."))
    assert run is not None
    system_runs = list(SystemRun.objects.select_for_update().filter(run=run))
    if any(s.status not in (SystemStatus.PLANNED, SystemStatus.SKIPPED) for s in system_runs):
        raise TransitionNotAllowed(gettext("The deletion has already started, or there is none to cancel."))
    run.state = RunState.CANCELLED
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "finished_at"])
    audit_event_record(
        request=locked,
        event=event_erasure_cancelled(
            actor=actor, run_id=run.pk, erase_after=run.erase_after.isoformat() if run.erase_after else ""
        ),
    )
    request_cancel(request=locked, actor=actor, reason=reason)
    return run


# --- Execution and verification --------------------------------------------------------------------


def _verify(connector: Connector, subject: Subject, plan: ErasurePlan) -> list[str]:
    return erasure_verify(connector, subject, plan)


def erasure_system_execute(*, system_run_id: int) -> None:
    """An execution task: the approved plan, in one transaction of the connector, then verified;
    or, for an http or manual system, the instruction to erase, sent through the channel."""
    kind = SystemRun.objects.filter(pk=system_run_id).values_list("kind", flat=True).first()
    if kind in INSTRUCTED_KINDS:
        _instruction_send(system_run_id)
        return
    system_run = _claim(system_run_id, executing=True)
    if system_run is None:
        return
    plan = plan_from_json(system_run.plan)
    if plan.digest() != system_run.plan_digest:  # the stored plan is what was approved, or nothing runs
        _system_failed(system_run.pk, stage="erase", error="the stored plan does not match its approved digest")
        return
    subject = _subject(system_run)
    try:
        _, connector = _system_spec(system_run)
        erased = connector.erase(subject, plan)
    except PlanChanged as changed:
        _system_replan(system_run.pk, detail=str(changed))
        return
    except Exception as error:  # rolled back whole by the connector; the others go on
        if not isinstance(error, ConnectorError):
            log.exception("erasure of %s failed", system_run.system)
        _system_failed(system_run.pk, stage="erase", error=_error_text(error))
        return
    _system_erased(system_run.pk, counts=erased.counts, fields=erased.fields)
    try:
        left = _verify(connector, subject, plan)
    except Exception as error:
        left = [f"the verification could not run: {_error_text(error)}"]
    _system_verified(system_run.pk, plan=plan, left=left)


def erasure_instruction(plan: ErasurePlan) -> Instruction:
    """What an http or manual system is told: per collection the keys (none for a manual system:
    its owner finds the person by identities), whether the rows go, which fields are rewritten by
    which strategy, and what stays."""
    items = tuple(
        {
            "collection": r.collection,
            "keys": list(r.keys),
            "delete": r.delete,
            "fields": [f for f, _ in r.updates],
            "strategies": dict(r.updates),
            "kept": [f for f, _ in r.kept],
        }
        for r in plan.rows
    )
    return Instruction(
        action="erase",
        items=items,
        note="Erase the person's records as listed: delete the rows marked so, and rewrite the listed fields "
        "(null, fixed, random or hash); leave the kept fields as they are.",
    )


def _instruction_send(system_run_id: int) -> None:
    """Execution for an http or manual system: the approved plan as an instruction to erase,
    dispatched through the channel (which tells the system after commit). A redelivered task finds
    the system no longer planned and does nothing."""
    now = timezone.now()
    with transaction.atomic():
        system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
        run = system_run.run
        if run.package_kind != PackageKind.ERASURE or run.state != RunState.RUNNING or run.approved_at is None:
            return
        if system_run.status != SystemStatus.PLANNED or (run.erase_after is not None and run.erase_after > now):
            return
        plan = plan_from_json(system_run.plan)
        if plan.digest() != system_run.plan_digest:
            system_run.status = SystemStatus.RUNNING
            system_run.save(update_fields=["status"])
            _system_failed(system_run.pk, stage="erase", error="the stored plan does not match its approved digest")
            return
        if system_run.kind == "http" and plan.empty:
            # It said it holds nothing: nothing to tell; verified by asking again, like the others.
            system_run.status = SystemStatus.DONE
            system_run.erased = {"counts": {}}
            system_run.finished_at = now
            system_run.save(update_fields=["status", "erased", "finished_at"])
            _enqueue("verify", system_run.pk)
            return
        instructions.instruction_dispatch(system_run=system_run, instruction=erasure_instruction(plan))


def _instructed_counts(system_run: SystemRun) -> dict[str, dict[str, int]]:
    """What the system said it changed ({collection: n}) as erased counts, by the plan's rows."""
    reported = (system_run.instructed or {}).get("counts") or {}
    rows = {r["collection"]: r for r in system_run.plan.get("rows", [])}
    counts = {}
    for collection, n in reported.items():
        delete = bool(rows.get(collection, {}).get("delete"))
        counts[collection] = {"deleted": int(n) if delete else 0, "updated": 0 if delete else int(n)}
    return counts


def erasure_instruction_outcome(run_id: int) -> None:
    """The channel's outcome hook for erasure runs (inside its transaction): a system that
    confirmed is recorded as erased with the counts it reported; a manual one is then verified by
    its owner's confirmation, an http one by `find` again (queued after commit); the run finishes
    when every system is done and verified, or failed."""
    # Locks in the order the other erasure paths take them (system, request, run). A system locked
    # by another transaction is skipped: that transaction is its own confirmation's and calls this
    # hook too, after us (the run's lock orders the two, so one of them sees every system done).
    request = request_locked(FulfilmentRun.objects.values_list("request_id", flat=True).get(pk=run_id))
    run = FulfilmentRun.objects.select_for_update().get(pk=run_id)
    if run.state != RunState.RUNNING or run.approved_at is None:
        return
    told = SystemRun.objects.select_for_update(skip_locked=True).filter(run=run, kind__in=INSTRUCTED_KINDS)
    for system_run in told:
        if is_recipient(system_run):
            continue  # a recipient's confirmation is its proof; the run's end reads it
        if system_run.status != SystemStatus.DONE or system_run.verification or system_run.erased:
            continue
        counts = _instructed_counts(system_run)
        system_run.erased = {"counts": counts, "confirmed_by": (system_run.instructed or {}).get("by", "")}
        fields = ["erased"]
        audit_event_record(
            request=request,
            event=event_erasure_executed(
                run_id=run.pk, system=system_run.system, digest=system_run.plan_digest, counts=counts, fields={}
            ),
        )
        if system_run.kind == "manual":
            kept = sum(len(r.get("kept", [])) for r in system_run.plan.get("rows", []))
            system_run.verification = {"ok": True, "left": [], "kept": kept, "by": "owner"}
            fields.append("verification")
            audit_event_record(
                request=request, event=event_erasure_verified(run_id=run.pk, system=system_run.system, kept=kept)
            )
        else:
            _enqueue("verify", system_run.pk)
        system_run.save(update_fields=fields)
    _execution_finish_if_complete(run.pk)


def erasure_system_verify(*, system_run_id: int) -> None:
    """An http system that confirmed its erasure is searched again (`find`): empty, except what the
    plan keeps, or the system fails with the keys left. A redelivered task does nothing twice."""
    system_run = SystemRun.objects.select_related("run__request").get(pk=system_run_id)
    if system_run.status != SystemStatus.DONE or system_run.verification or system_run.kind != "http":
        return
    if system_run.run.state != RunState.RUNNING:
        return
    plan = plan_from_json(system_run.plan)
    try:
        _, connector = _system_spec(system_run)
        left = _verify(connector, _subject(system_run), plan)
    except Exception as error:
        left = [f"the verification could not run: {_error_text(error)}"]
    with transaction.atomic():
        locked = SystemRun.objects.select_for_update().get(pk=system_run_id)
        if locked.status != SystemStatus.DONE or locked.verification:
            return
        request = request_locked(system_run.run.request_id)
        if left:
            found_left = "the verification found rows left: " + "; ".join(left)
            locked.status = SystemStatus.FAILED
            locked.error = found_left[:2000]
            locked.verification = {"ok": False, "left": left}
            locked.save(update_fields=["status", "error", "verification"])
            audit_event_record(
                request=request,
                event=event_erasure_failed(
                    run_id=locked.run_id, system=locked.system, stage="verify", error=found_left
                ),
            )
        else:
            kept = sum(len(r.keys) for r in plan.rows if not r.delete)
            locked.verification = {"ok": True, "left": [], "kept": kept, "by": "find"}
            locked.save(update_fields=["verification"])
            audit_event_record(
                request=request, event=event_erasure_verified(run_id=locked.run_id, system=locked.system, kept=kept)
            )
        _execution_finish_if_complete(locked.run_id)


@transaction.atomic
def _system_replan(system_run_id: int, *, detail: str) -> None:
    """The data changed since approval (nothing was changed): this system is planned again and
    the run goes back to awaiting approval; systems already erased stay erased."""
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    run = FulfilmentRun.objects.select_for_update().get(pk=system_run.run_id)
    request = request_locked(run.request_id)
    audit_event_record(
        request=request,
        event=event_erasure_plan_changed(
            run_id=run.pk, system=system_run.system, digest=system_run.plan_digest, detail=detail[:500]
        ),
    )
    system_run.status = SystemStatus.PENDING
    system_run.plan = {}
    system_run.plan_digest = ""
    system_run.lease_until = None
    system_run.save(update_fields=["status", "plan", "plan_digest", "lease_until"])
    run.approved_at = None
    run.approvals = []
    run.state = RunState.RUNNING
    run.save(update_fields=["approved_at", "approvals", "state"])
    _enqueue("plan", system_run.pk)


@transaction.atomic
def _system_erased(system_run_id: int, *, counts: dict, fields: dict) -> None:
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    request = request_locked(system_run.run.request_id)
    system_run.erased = {"counts": counts, "fields": fields}
    system_run.save(update_fields=["erased"])
    audit_event_record(
        request=request,
        event=event_erasure_executed(
            run_id=system_run.run_id, system=system_run.system, digest=system_run.plan_digest, counts=counts,
            fields=fields,
        ),
    )  # fmt: skip


def _system_verified(system_run_id: int, *, plan: ErasurePlan, left: list[str]) -> None:
    if left:
        _system_failed(system_run_id, stage="verify", error="the verification found rows left: " + "; ".join(left))
        with transaction.atomic():
            SystemRun.objects.filter(pk=system_run_id).update(verification={"ok": False, "left": left})
        return
    with transaction.atomic():
        system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
        if system_run.status != SystemStatus.RUNNING:
            return
        kept = sum(len(r.keys) for r in plan.rows if not r.delete)
        request = request_locked(system_run.run.request_id)
        system_run.verification = {"ok": True, "left": [], "kept": kept}
        system_run.status = SystemStatus.DONE
        system_run.lease_until = None
        system_run.finished_at = timezone.now()
        system_run.save(update_fields=["verification", "status", "lease_until", "finished_at"])
        audit_event_record(
            request=request, event=event_erasure_verified(run_id=system_run.run_id, system=system_run.system, kept=kept)
        )
        _execution_finish_if_complete(system_run.run_id)


def _unproven(system_run: SystemRun) -> bool:
    # An http system's confirmation counts once `find` agrees; a manual one's is its owner's word.
    return (
        system_run.status == SystemStatus.DONE
        and system_run.kind in INSTRUCTED_KINDS
        and not system_run.verification
        and not is_recipient(system_run)
    )


def _execution_finish_if_complete(run_id: int) -> None:
    system_runs = list(SystemRun.objects.filter(run_id=run_id).order_by("id"))
    if any(s.status not in TERMINAL or _unproven(s) for s in system_runs):
        return
    run = FulfilmentRun.objects.select_for_update().get(pk=run_id)
    if run.state != RunState.RUNNING or run.approved_at is None:
        return
    failed = [s.system for s in system_runs if s.status == SystemStatus.FAILED]
    if not failed and _recipients_told_now(run, system_runs):
        return  # the run ends when each recipient confirmed (or failed)
    run.state = RunState.FAILED if failed else RunState.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "finished_at"])
    request = request_locked(run.request_id)
    deleted = sum(c.get("deleted", 0) for s in system_runs for c in s.erased.get("counts", {}).values())
    audit_event_record(
        request=request,
        event=event_fulfilment_finished(run_id=run.pk, state=run.state, records=deleted, failed=failed),
    )
    erased = [s.system for s in system_runs if s.status == SystemStatus.DONE and not is_recipient(s)]
    if erased:
        ledger_record(run=run, request=request, systems=erased)
    if failed:  # the request stays open; the team sees it flagged
        request_flag(request_id=request.pk, reason=f"Erasure failed in {', '.join(failed)}", data={"systems": failed})


def _recipients_told_now(run: FulfilmentRun, system_runs: list[SystemRun]) -> bool:
    """Once, when every system of the business is erased: tell the recipients of those systems.
    True when some were told now (the run waits for them); False when there are none to tell or
    they were told already."""
    if not _recipients_tell or any(is_recipient(s) for s in system_runs):
        return False
    datamap = _datamap()
    systems = [spec for s in system_runs if s.status == SystemStatus.DONE and (spec := datamap.system(s.system))]
    if not any(spec.recipients for spec in systems):
        return False
    told = _recipients_tell[0](
        run=run, instruction=Instruction(action="erase", note=RECIPIENTS_ERASE_NOTE), systems=systems
    )
    return bool(told)


def erasure_stalled_requeue() -> int:
    """The sweep: an erasure system whose task was lost (a broker restart) or whose worker died
    past its lease is queued again; the claim makes a duplicate harmless."""
    now = timezone.now()
    # Once approved, an http or manual system's PENDING and RUNNING belong to the instruction
    # channel, which has its own; a cool-off's systems wait until it is over.
    due = Q(run__erase_after__isnull=True) | Q(run__erase_after__lte=now)
    stalled = (
        SystemRun.objects.filter(run__state=RunState.RUNNING, run__package_kind=PackageKind.ERASURE)
        .filter(instruction={})  # a system told to erase is queued again by instructions.py
        .filter(
            Q(
                status=SystemStatus.PENDING,
                run__approved_at__isnull=True,
                run__started_at__lt=now - timedelta(minutes=2),
            )
            | (Q(status=SystemStatus.PLANNED, run__approved_at__lt=now - timedelta(minutes=2)) & due)
            | Q(status=SystemStatus.RUNNING, lease_until__lt=now, run__approved_at__isnull=True)
            | Q(status=SystemStatus.RUNNING, lease_until__lt=now, kind__in=ERASING_KINDS)
        )
        .values_list("pk", "run__approved_at")
    )
    count = 0
    for system_run_id, approved_at in stalled:
        with transaction.atomic():
            _enqueue("plan" if approved_at is None else "erase", system_run_id)
        count += 1
    # An http system that confirmed but whose verification task was lost.
    unverified = SystemRun.objects.filter(
        run__state=RunState.RUNNING,
        run__package_kind=PackageKind.ERASURE,
        kind="http",
        status=SystemStatus.DONE,
        verification={},
    ).filter(Q(confirmed_at__lt=now - timedelta(minutes=2)) | Q(finished_at__lt=now - timedelta(minutes=2)))
    for system_run_id in unverified.values_list("pk", flat=True):
        with transaction.atomic():
            _enqueue("verify", system_run_id)
        count += 1
    return count


# --- The ledger ------------------------------------------------------------------------------------


def identity_digest(kind: str, value: str) -> str:
    """A keyed HMAC of one identity (DSR_LEDGER_KEY, never in the database): the ledger can say
    "this person was erased" of an identity it is shown, and holds nothing to read back."""
    key = settings.DSR_LEDGER_KEY
    if not key:
        raise RuntimeError("DSR_LEDGER_KEY is not set")
    message = f"{kind}\x00{value.strip().lower()}".encode()
    return f"{kind}:{hmac.new(key.encode(), message, hashlib.sha256).hexdigest()}"


def ledger_record(*, run: FulfilmentRun, request: DataSubjectRequest, systems: list[str]) -> ErasureLedgerEntry:
    entry, _ = ErasureLedgerEntry.objects.update_or_create(
        run=run,
        defaults={
            "reference": request.reference,
            "identity_digests": [identity_digest("email", request.email)],
            "systems": systems,
            "erased_at": timezone.now(),
        },
    )
    return entry


@dataclass
class ReplayResult:
    reference: str
    system: str
    found: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str = ""


def ledger_replay(*, since: datetime, dry_run: bool = False) -> list[ReplayResult]:
    """Erase again what a restored backup brought back: for each ledger entry since `since`, the
    identities come from the request's record (kept under §7101; the ledger holds only HMACs,
    checked against them), each system erased is planned again and, unless `dry_run`, erased."""
    results: list[ReplayResult] = []
    entries = ErasureLedgerEntry.objects.filter(erased_at__gte=since).select_related("run__request").order_by("pk")
    datamap = _datamap()
    for entry in entries:
        request = entry.run.request
        digest = identity_digest("email", request.email) if request.email else ""
        if digest not in entry.identity_digests:
            results.append(
                ReplayResult(
                    entry.reference,
                    "-",
                    error="the request's email no longer matches the ledger (purged, or DSR_LEDGER_KEY changed)",
                )
            )
            continue
        for name in entry.systems:
            system = datamap.system(name)
            if system is not None and system.kind in INSTRUCTED_KINDS:
                # Erased by the system or its owner in their own records, which the product's
                # backups do not hold: a restore here brings nothing of them back.
                continue
            result = ReplayResult(entry.reference, name)
            results.append(result)
            if system is None:
                result.error = f"{name} is no longer in the data map"
                continue
            subject = Subject(
                reference=request.reference,
                identities={"email": request.email.strip().lower()},
                request_type=request.request_type,
                task_key=f"replay:{request.reference}:{entry.run_id}:{name}",
            )
            try:
                connector = connector_for(system)
                plan = connector.erase_plan(subject)
                result.found = sum(len(r.keys) for r in plan.rows if r.delete or r.updates)
                if plan.problems:
                    result.error = "; ".join(plan.problems)
                    continue
                if dry_run or not result.found:
                    continue
                erased = connector.erase(subject, plan)
            except Exception as error:  # one system's failure is named; the others go on
                result.error = _error_text(error)
                continue
            result.counts = erased.counts
            with transaction.atomic():
                audit_event_record(
                    request=request_locked(request.pk),
                    event=event_erasure_replayed(
                        run_id=entry.run_id, system=name, found=result.found, counts=erased.counts
                    ),
                )
    return results


def erasure_answer_send(*, request: DataSubjectRequest, actor: Actor) -> DataSubjectRequest:
    """Complete the request with the answer built from the erasure (never typed by hand): in part
    when a system was asked separately, not yet automated. Only once every automated system is erased."""
    run = (
        FulfilmentRun.objects.filter(request=request, package_kind=PackageKind.ERASURE)
        .order_by("-started_at", "-pk")
        .first()
    )
    if run is None or run.state != RunState.DONE:
        raise TransitionNotAllowed(f"The erasure for {request.reference} is not done yet; the answer waits for it.")
    in_part = SystemRun.objects.filter(run=run).exclude(status=SystemStatus.DONE).exists()
    return request_complete(
        request=request,
        actor=actor,
        message=erasure_answer_message(run, request.language),
        outcome=Outcome.COMPLIED_IN_PART if in_part else Outcome.COMPLIED,
    )


# --- What the API and the panel show, and the requester's answer -----------------------------------


def erasure_plan_view(run: FulfilmentRun | None, system_runs: list[SystemRun]) -> dict[str, Any] | None:
    """`"plan"` of `GET …/fulfilment/`: per system and collection the rows (by key) to be deleted,
    masked, kept and why; the problems; the approvals."""
    if run is None or run.package_kind != PackageKind.ERASURE:
        return None
    systems = []
    recipients = []
    try:
        datamap: DataMap | None = _datamap() if any(is_recipient(s) for s in system_runs) else None
    except runs.FulfilmentUnavailable:
        datamap = None
    for s in system_runs:
        if is_recipient(s):
            recipients.append(
                {
                    "recipient": s.system, "name": recipient_name(datamap, s.system), "kind": s.kind,
                    "status": s.status, "told_at": s.requested_at,
                    "confirmed_at": s.confirmed_at, "confirmed_by": (s.instructed or {}).get("by", ""),
                    "error": s.error if s.status == SystemStatus.FAILED else "",
                }
            )  # fmt: skip
            continue
        collections = []
        for row in s.plan.get("rows", []):
            action = "delete" if row["delete"] else ("mask" if row["updates"] else "keep")
            collections.append(
                {
                    "collection": row["collection"],
                    "action": action,
                    "keys": [str(k) for k in row["keys"]],
                    "updates": [{"field": f, "strategy": st} for f, st in row["updates"]],
                    "kept": [{"field": f, "reason": why} for f, why in row["kept"]],
                    "note": row.get("note", ""),
                    "counts": s.plan.get("counts", {}).get(row["collection"], {}),
                }
            )
        systems.append(
            {
                "system": s.system,
                "kind": s.kind,
                "status": s.status,
                "digest": s.plan_digest,
                # How it is erased and proved: one transaction here, or told and confirmed.
                "automated": s.kind in ERASING_KINDS,
                "told": s.kind in INSTRUCTED_KINDS,
                "verified_by": s.plan.get("verified_by", VERIFIED_BY.get(s.kind, "")),
                "confirmed_at": s.confirmed_at,
                "confirmed_by": (s.instructed or {}).get("by", ""),
                "error": s.error if s.status == SystemStatus.FAILED else "",
                "note": s.error if s.status == SystemStatus.SKIPPED else "",
                "collections": collections,
                "problems": list(s.plan.get("problems", [])),
                "erased": s.erased.get("counts", {}),
                "verified": s.verification.get("ok") if s.verification else None,
            }
        )
    return {
        "systems": systems,
        # Told to delete once every system erased (Art 17(2), Art 19, §7022(b)(3)).
        "recipients": recipients,
        "problems": plan_problems(system_runs),
        "approvals": [{"by": a["by"], "at": a["at"]} for a in run.approvals],
        "approvals_needed": approvals_needed(),
        "approved_at": run.approved_at,
        # The cool-off: the erasure runs from this moment (null: at once); cancellable until then.
        "erase_after": run.erase_after,
        "cancellable": erasure_waiting(run),
    }


def erasure_answer_message(run: FulfilmentRun, language: str, datamap: DataMap | None = None) -> str:
    """The requester's answer, in their language: what was deleted, what was kept and why
    (§7022(f), Art 12(4)), the systems asked separately, and for CCPA the recipients (§7022(b)(3)).
    It names systems, counts and reasons only — never a piece of personal data."""
    system_runs = list(SystemRun.objects.filter(run=run).order_by("id"))
    if datamap is None:
        try:
            datamap = _datamap()
        except Exception:
            datamap = None
    with translation.override(language):
        lines = [gettext("We have acted on your request to delete your personal information:")]
        reasons: list[str] = []
        for s in system_runs:
            if is_recipient(s):
                continue  # listed below, with who was told
            counts = s.erased.get("counts", {})
            deleted = sum(c.get("deleted", 0) for c in counts.values())
            masked = sum(c.get("updated", 0) for c in counts.values())
            if s.status == SystemStatus.DONE and s.kind in INSTRUCTED_KINDS and not counts and s.plan.get("rows"):
                # Told and confirmed, without counts: say who confirmed, never a number not given.
                line = (
                    gettext("%(system)s: its owner confirmed that your information was deleted.")
                    if s.kind == "manual"
                    else gettext("%(system)s: the system confirmed that your information was deleted.")
                ) % {"system": s.system}
            elif s.status == SystemStatus.DONE:
                line = ngettext(
                    "%(system)s: we deleted %(count)d record", "%(system)s: we deleted %(count)d records", deleted
                ) % {"system": s.system, "count": deleted}
                if masked:
                    line += ngettext(
                        " and removed your details from %(count)d record we must keep.",
                        " and removed your details from %(count)d records we must keep.",
                        masked,
                    ) % {"count": masked}
                else:
                    line += "."
            elif s.status == SystemStatus.SKIPPED:
                line = gettext("%(system)s: we have asked for your information to be deleted there separately.") % {
                    "system": s.system
                }
            else:
                line = gettext("%(system)s: not yet deleted; we are working on it and will tell you when it is.") % {
                    "system": s.system
                }
            lines.append(f"- {line}")
            for row in s.plan.get("rows", []) if s.status == SystemStatus.DONE else []:
                for _field, why in row["kept"]:
                    if why and why not in reasons:
                        reasons.append(why)
        if reasons:
            lines.append(gettext("We kept some information because the law requires or allows it:"))
            lines.extend(f"- {why}" for why in reasons)
            lines.append(gettext("We use what we kept only for those reasons."))
        lines.append(gettext("We keep a record of your request, as the law requires."))
        told = recipients_told_lines(system_runs, datamap)
        if told:
            # §7022(b)(3), Art 17(2) and Art 19: who received it and was told to delete it.
            lines.append(gettext("We told those who received your information from us to delete it:"))
            lines.extend(told)
        return "\n".join(lines)


runs.erasure_starter_register(erasure_start)

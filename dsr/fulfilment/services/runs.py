"""A fulfilment run: one search for one request across every system of the data map, with a state
per system. `fulfilment_start` records the run (and the map version it used) and queues one task
per system after commit; `system_run_execute` is what each task does — claim the system, call its
connector, store what it found encrypted, record the outcome — and is a no-op when redelivered. A
failing system is retried with backoff, then shown as failed with its error; the others go on. The
run finishes when every system is done, failed or skipped; the package is built when none failed
(or when the officer builds it with what is there)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dsr.clock import add_months
from dsr.errors import DsrError, InvalidInput, TransitionNotAllowed
from dsr.fulfilment.connectors import connector_for
from dsr.fulfilment.connectors.base import ConnectorError, Subject
from dsr.fulfilment.crypto import token_digest, token_new
from dsr.fulfilment.datamap import DataMap, DataMapError, System, datamap_load
from dsr.fulfilment.models import FulfilmentRun, PackageKind, RunState, SystemRun, SystemStatus
from dsr.fulfilment.records import RecordPolicy
from dsr.fulfilment.results import ResultSink, held_delete
from dsr.models import TYPES_WITHOUT_VERIFICATION, AccessPeriod, DataSubjectRequest, Regime, RequestType, Status
from dsr.services.audit import Actor, audit_event_record
from dsr.services.events import (
    event_fulfilment_finished,
    event_fulfilment_started,
    event_fulfilment_system_done,
    event_fulfilment_system_failed,
    event_fulfilment_system_requested,
    event_fulfilment_system_retried,
    event_fulfilment_system_switched_to_manual,
)
from dsr.services.transitions import request_locked

log = logging.getLogger(__name__)

# The request types a search answers, and what the package holds for each.
PACKAGE_KINDS = {
    RequestType.ACCESS: PackageKind.CATEGORIES,  # §1798.110(a)(1)-(4), Art 15(1): categories, no records
    RequestType.ACCESS_SPECIFIC: PackageKind.RECORDS,  # §1798.110(a)(5), Art 15(3): a copy
    RequestType.PORTABILITY: PackageKind.PORTABLE,  # Art 20: what the person provided, machine-readable
}
STARTABLE_STATUSES = frozenset({Status.VERIFIED, Status.IN_PROGRESS})
TERMINAL = frozenset({SystemStatus.DONE, SystemStatus.FAILED, SystemStatus.SKIPPED})


class FulfilmentUnavailable(DsrError):
    """The data map does not load: nothing can be searched until it is fixed."""

    status_code = 409
    code = "datamap_invalid"


# Set by the tasks module: how a system's task and the package build are queued (ids only).
_queue: dict[str, Callable[..., Any]] = {}


def queue_register(name: str, function: Callable[..., Any]) -> None:
    _queue[name] = function


# Set by services/erasure.py on import: an erasure request's start plans instead of searching.
_erasure_starter: list[Callable[..., FulfilmentRun]] = []


def erasure_starter_register(function: Callable[..., FulfilmentRun]) -> None:
    _erasure_starter[:] = [function]


# Set by the services that answer a request type by telling the systems (services/propagation.py:
# restriction, opt-out of sale/sharing, limit of sensitive data): request type -> its starter.
_type_starters: dict[str, Callable[..., FulfilmentRun]] = {}


def type_starter_register(request_type: str, function: Callable[..., FulfilmentRun]) -> None:
    _type_starters[request_type] = function


# Set by services/corrections.py on import: a rectification request's start reads the current
# values of the fields to correct, then waits for the officer's decisions.
_correction_starter: list[Callable[..., FulfilmentRun]] = []


def correction_starter_register(function: Callable[..., FulfilmentRun]) -> None:
    _correction_starter[:] = [function]


def _enqueue(name: str, *args: Any, countdown: float = 0) -> None:
    function = _queue.get(name)
    if function is None:  # the tasks module registers on import (AppConfig.ready)
        raise RuntimeError(f"no queue for {name}")
    transaction.on_commit(lambda: function(*args, countdown=countdown))


def lookback_since(request: DataSubjectRequest) -> datetime | None:
    """CCPA: the period the form recorded (12 months before receipt, or back to 2022-01-01,
    §7024(h)); GDPR and elsewhere: no time limit (Art 15)."""
    if request.regime != Regime.CCPA:
        return None
    if request.access_period == AccessPeriod.SINCE_2022:
        return datetime(2022, 1, 1, tzinfo=timezone.get_current_timezone()).astimezone(UTC)
    received = timezone.localtime(request.received_at)
    start = add_months(received.date(), -12)
    return received.replace(year=start.year, month=start.month, day=start.day).astimezone(UTC)


def _datamap() -> DataMap:
    try:
        return datamap_load()
    except DataMapError as error:
        raise FulfilmentUnavailable(str(error)) from None


def subject_for(system_run: SystemRun) -> Subject:
    request = system_run.run.request
    return Subject(
        reference=request.reference,
        identities={"email": request.email.strip().lower()},
        request_type=request.request_type,
        due_date=system_run.run.due_date,
        task_key=f"{request.reference}:{system_run.run_id}:{system_run.system}",
    )


def policy_for(run: FulfilmentRun, system: System) -> RecordPolicy:
    return RecordPolicy(
        system=system,
        portable_only=run.package_kind == PackageKind.PORTABLE,
        since=run.since,
        own_identities=frozenset({run.request.email.strip().lower()}),
    )


def run_create(
    *,
    locked: DataSubjectRequest,
    datamap: DataMap,
    package_kind: str,
    actor: Actor,
    busy: str,
    since: datetime | None = None,
) -> FulfilmentRun:
    """Every starter's run: the map version it uses, the request's due date, who started it. The
    database refuses a second run while one runs or awaits approval (`busy` is then the 409)."""
    try:
        with transaction.atomic():
            return FulfilmentRun.objects.create(
                request=locked,
                datamap_version=datamap.version,
                datamap_path=datamap.path,
                package_kind=package_kind,
                since=since,
                due_date=locked.respond_by,
                started_by=actor.label,
                started_at=timezone.now(),
            )
    except IntegrityError:
        raise TransitionNotAllowed(busy) from None


def runs_awaiting_cancel(locked: DataSubjectRequest) -> None:
    """A run still awaiting approval (a plan, values read) is replaced when the officer starts again."""
    for old in FulfilmentRun.objects.select_for_update().filter(request=locked, state=RunState.AWAITING_APPROVAL):
        old.state = RunState.CANCELLED
        old.finished_at = timezone.now()
        old.save(update_fields=["state", "finished_at"])


@transaction.atomic
def fulfilment_start(*, request: DataSubjectRequest, actor: Actor) -> FulfilmentRun:
    """Start a search for a verified access or portability request. Raises TransitionNotAllowed
    (409) when the request is not verified, is closed, is of another type, or a search runs."""
    locked = request_locked(request.pk)
    answered = locked.request_type in PACKAGE_KINDS or locked.request_type in _type_starters
    if not answered and locked.request_type not in (RequestType.ERASURE, RequestType.RECTIFICATION):
        raise TransitionNotAllowed(
            f"{locked.reference} is a request to {locked.get_request_type_display().lower()}; only requests to "
            "know, portability, erasure and correction requests, restrictions and opt-outs are answered through "
            "the systems."
        )
    # §7060(b), §7027: an opt-out or a limit is honoured without verification.
    verified = locked.verified_at or locked.request_type in TYPES_WITHOUT_VERIFICATION
    if locked.status not in STARTABLE_STATUSES or not verified:
        raise TransitionNotAllowed(
            f"{locked.reference} is {locked.get_status_display().lower()}; a search starts only once the request "
            "is verified and while it is open."
        )
    if locked.request_type in _type_starters:  # one door: the systems are told, then confirm
        return _type_starters[locked.request_type](locked=locked, actor=actor)
    if locked.request_type == RequestType.ERASURE:  # one door: the erasure run plans, then waits for approval
        if not _erasure_starter:
            raise TransitionNotAllowed("Erasure runs are not available (no erasure service registered).")
        return _erasure_starter[0](locked=locked, actor=actor)
    if locked.request_type == RequestType.RECTIFICATION:  # one door: read the values, then the officer decides
        if not _correction_starter:
            raise TransitionNotAllowed("Correction runs are not available (no correction service registered).")
        return _correction_starter[0](locked=locked, actor=actor)
    datamap = _datamap()
    run = run_create(
        locked=locked,
        datamap=datamap,
        package_kind=PACKAGE_KINDS[RequestType(locked.request_type)],
        actor=actor,
        busy=f"A search for {locked.reference} is already running.",
        since=lookback_since(locked),
    )
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
            since=run.since,
        ),
    )
    for system_run in system_runs:
        _enqueue("system", system_run.pk)
    if not system_runs:
        _run_finish_if_complete(run)
    return run


def fulfilment_autostart(request_id: int) -> None:
    """The `request_approved` hook: start the search when the setting says so (else the officer does)."""
    if not settings.DSR_FULFILMENT_AUTO_START:
        return
    request = DataSubjectRequest.objects.get(pk=request_id)
    if request.request_type not in PACKAGE_KINDS and request.request_type not in _type_starters:
        return
    try:
        fulfilment_start(request=request, actor=Actor.system("fulfilment"))
    except DsrError as refused:
        log.warning("fulfilment for %s not started: %s", request.reference, refused.message)


def _claim(system_run_id: int) -> SystemRun | None:
    """Take the system for this attempt, or None when there is nothing to do (done, waiting for
    its owner, or claimed by a live attempt): a redelivered task does no work twice."""
    now = timezone.now()
    with transaction.atomic():
        system_run = SystemRun.objects.select_for_update().select_related("run__request").get(pk=system_run_id)
        if system_run.run.state != RunState.RUNNING or system_run.run.package_kind in (
            PackageKind.ERASURE,
            PackageKind.CORRECTION,
        ):
            return None  # planned and erased by services/erasure.py, read and corrected by services/corrections.py
        if system_run.instruction:
            return None  # a system told an instruction: services/instructions.py
        if system_run.status in (*TERMINAL, SystemStatus.WAITING_MANUAL):
            return None
        if system_run.status == SystemStatus.RUNNING and (
            system_run.requested_at or (system_run.lease_until and system_run.lease_until > now)
        ):
            return None
        system_run.status = SystemStatus.RUNNING
        system_run.attempts += 1
        system_run.started_at = system_run.started_at or now
        system_run.lease_until = now + timedelta(seconds=settings.DSR_FULFILMENT_LEASE_SECONDS)
        system_run.save(update_fields=["status", "attempts", "started_at", "lease_until"])
        return system_run


# Registered by the connector modules that need them (dsr.fulfilment.connectors.http, .manual):
# - a subject preparer adds what an asynchronous system answers to (the callback URL and its token);
# - the manual asker opens the owner's task and emails them, returning what was asked.
_subject_preparers: dict[str, Callable[[SystemRun, Subject], Subject]] = {}
_manual_asker: list[Callable[[SystemRun, System, Subject], str]] = []


def subject_preparer_register(kind: str, function: Callable[[SystemRun, Subject], Subject]) -> None:
    _subject_preparers[kind] = function


def manual_asker_register(function: Callable[[SystemRun, System, Subject], str]) -> None:
    _manual_asker[:] = [function]


def callback_token_issue(system_run: SystemRun) -> str:
    """A fresh bearer token for an asynchronous system's answer; only its keyed hash is kept."""
    token = token_new()
    SystemRun.objects.filter(pk=system_run.pk).update(callback_digest=token_digest(token))
    return token


def system_run_execute(*, system_run_id: int) -> None:
    system_run = _claim(system_run_id)
    if system_run is None:
        return
    run = system_run.run
    try:
        datamap = _datamap()
        if datamap.version != run.datamap_version:
            raise ConnectorError(
                f"the data map changed since this search started (version {run.datamap_version[:12]} → "
                f"{datamap.version[:12]}); start a new search"
            )
        system = datamap.system(system_run.system)
        if system is None:
            raise ConnectorError(f"{system_run.system} is no longer in the data map")
    except (ConnectorError, FulfilmentUnavailable) as error:
        _system_failed(system_run.pk, str(error), retry=False)
        return
    subject = subject_for(system_run)
    if system.kind == "manual":
        if not _manual_asker:
            _system_failed(system_run.pk, "manual systems are not available (no task flow registered)", retry=False)
            return
        _system_requested(system_run, system, _manual_asker[0](system_run, system, subject))
        return
    if system.kind in _subject_preparers:
        subject = _subject_preparers[system.kind](system_run, subject)
    sink = ResultSink(run_id=run.pk, system=system, policy=policy_for(run, system))
    try:
        connector = connector_for(system)
        exported = connector.export(subject, sink)
    except ConnectorError as error:
        sink.discard()
        _system_failed(system_run.pk, str(error), retry=error.retry, retries=system.connection.get("retries"))
        return
    except Exception as error:  # a connector's bug fails its system, visibly, never the others
        sink.discard()
        log.exception("system %s failed", system.name)
        _system_failed(
            system_run.pk,
            f"unexpected error: {type(error).__name__}: {error}",
            retry=True,
            retries=system.connection.get("retries"),
        )
        return
    sink.close()
    if exported.pending:
        held_delete(sink.name)
        _system_requested(system_run, system, exported.pending)
        return
    _system_done(system_run.pk, sink=sink)


def _locked_system(system_run_id: int) -> tuple[SystemRun, DataSubjectRequest]:
    system_run = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run_id)
    return system_run, request_locked(system_run.run.request_id)


@transaction.atomic
def _system_done(system_run_id: int, *, sink: ResultSink) -> None:
    system_run, request = _locked_system(system_run_id)
    if system_run.status in TERMINAL:  # answered twice (a late callback): keep the first answer
        held_delete(sink.name)
        return
    held_delete(system_run.result_name)
    system_run.status = SystemStatus.DONE
    system_run.records = sink.total
    system_run.counts = sink.counts
    system_run.withheld = sink.policy.withheld_list()
    system_run.result_name = sink.name
    system_run.error = ""
    system_run.finished_at = timezone.now()
    system_run.lease_until = None
    system_run.save()
    audit_event_record(
        request=request,
        event=event_fulfilment_system_done(
            run_id=system_run.run_id, system=system_run.system, kind=system_run.kind, records=sink.total,
            counts=sink.counts,
        ),
    )  # fmt: skip
    _run_finish_if_complete(system_run.run)


@transaction.atomic
def _system_requested(system_run: SystemRun, system: System, asked: str) -> None:
    locked, request = _locked_system(system_run.pk)
    if locked.status in TERMINAL:  # a fast processor's callback already answered
        return
    locked.status = SystemStatus.WAITING_MANUAL if system.kind == "manual" else SystemStatus.RUNNING
    locked.requested_at = timezone.now()
    locked.lease_until = None
    locked.error = ""
    locked.save(update_fields=["status", "requested_at", "lease_until", "error"])
    audit_event_record(
        request=request,
        event=event_fulfilment_system_requested(
            run_id=locked.run_id, system=locked.system, kind=locked.kind, asked=asked
        ),
    )


@transaction.atomic
def _system_failed(system_run_id: int, error: str, *, retry: bool, retries: int | None = None) -> None:
    """Record a failed attempt: tried again with backoff while the system's `retries` (the map's
    connection setting, else DSR_FULFILMENT_RETRIES) allow and the error may pass, else failed."""
    system_run, request = _locked_system(system_run_id)
    if system_run.status in TERMINAL:
        return
    limit = settings.DSR_FULFILMENT_RETRIES if retries is None else int(retries)
    again = retry and system_run.attempts <= limit
    system_run.error = error[:2000]
    system_run.lease_until = None
    system_run.status = SystemStatus.PENDING if again else SystemStatus.FAILED
    system_run.finished_at = None if again else timezone.now()
    system_run.save(update_fields=["error", "lease_until", "status", "finished_at"])
    audit_event_record(
        request=request,
        event=event_fulfilment_system_failed(
            run_id=system_run.run_id, system=system_run.system, kind=system_run.kind, error=system_run.error,
            attempts=system_run.attempts, final=not again,
        ),
    )  # fmt: skip
    if again:
        backoff = settings.DSR_FULFILMENT_RETRY_SECONDS * 2 ** (system_run.attempts - 1)
        _enqueue("system", system_run.pk, countdown=min(backoff, 900))
    else:
        _run_finish_if_complete(system_run.run)


def system_run_answer_failed(*, system_run_id: int, error: str) -> None:
    """An asynchronous system answered with an error of its own (a processor's callback): the
    system fails visibly, without a retry (it did answer); the officer can retry or ask its owner."""
    _system_failed(system_run_id, error, retry=False)


def system_run_records_receive(
    *, system_run: SystemRun, records: Iterable[tuple[str, dict[str, Any]]], datamap: DataMap | None = None
) -> int:
    """An asynchronous system's answer (a processor's callback, an owner's upload): its records
    go through the same policy as a query's, then the system is done. Returns the records kept.
    Raises InvalidInput naming the first collection the map does not know."""
    datamap = datamap or _datamap()
    system = datamap.system(system_run.system)
    if system is None:
        raise InvalidInput(f"{system_run.system} is no longer in the data map")
    names = {c.name for c in system.collections}
    run = FulfilmentRun.objects.select_related("request").get(pk=system_run.run_id)
    sink = ResultSink(run_id=run.pk, system=system, policy=policy_for(run, system))
    try:
        for collection, record in records:
            if collection not in names:
                raise InvalidInput(
                    f"'{collection}' is not a collection of {system.name} in the data map "
                    f"(one of: {', '.join(sorted(names))})",
                    field="records",
                )
            if not isinstance(record, dict):
                raise InvalidInput(f"a record of '{collection}' must be an object", field="records")
            sink.write(collection, record)
    except BaseException:
        sink.discard()
        raise
    sink.close()
    _system_done(system_run.pk, sink=sink)
    return sink.total


@transaction.atomic
def _run_finish_if_complete(run: FulfilmentRun) -> None:
    statuses = list(SystemRun.objects.filter(run=run).values_list("status", "system", "records"))
    if any(status not in TERMINAL for status, _, _ in statuses):
        return
    locked = FulfilmentRun.objects.select_for_update().get(pk=run.pk)
    if locked.state != RunState.RUNNING:
        return
    failed = [system for status, system, _ in statuses if status == SystemStatus.FAILED]
    locked.state = RunState.FAILED if failed else RunState.DONE
    locked.finished_at = timezone.now()
    locked.save(update_fields=["state", "finished_at"])
    request = request_locked(locked.request_id)
    audit_event_record(
        request=request,
        event=event_fulfilment_finished(
            run_id=locked.pk, state=locked.state, records=sum(r for _, _, r in statuses), failed=failed
        ),
    )
    if not failed:
        _enqueue("package", locked.pk)


def _current_run(request: DataSubjectRequest) -> FulfilmentRun:
    run = FulfilmentRun.objects.filter(request=request).order_by("-started_at", "-pk").first()
    if run is None:
        raise TransitionNotAllowed(f"No search has been started for {request.reference}.")
    return run


@transaction.atomic
def system_run_retry(*, request: DataSubjectRequest, system: str, actor: Actor) -> SystemRun:
    """Run one failed system again (the others keep their results)."""
    locked_request = request_locked(request.pk)
    if not locked_request.is_open:
        raise TransitionNotAllowed(f"{locked_request.reference} is closed; its search cannot be retried.")
    run = FulfilmentRun.objects.select_for_update().get(pk=_current_run(locked_request).pk)
    if run.package_kind == PackageKind.ERASURE:
        raise TransitionNotAllowed(
            f"An erasure is not retried system by system: plan {locked_request.reference} again (Plan again, or "
            "POST …/fulfilment/start/), which finds what is left and asks for approval."
        )
    if run.package_kind not in PACKAGE_KINDS.values():  # a run that tells systems what to do
        raise TransitionNotAllowed(f"{system} was told an instruction: tell it again instead of retrying a search.")
    system_run = SystemRun.objects.select_for_update().filter(run=run, system=system).first()
    if system_run is None:
        raise InvalidInput(f"{system} was not searched for {locked_request.reference}.", field="system")
    if system_run.status != SystemStatus.FAILED:
        raise TransitionNotAllowed(
            f"{system} is {system_run.get_status_display().lower()}; only a failed system is retried."
        )
    if run.state != RunState.RUNNING:
        if FulfilmentRun.objects.filter(request=locked_request, state=RunState.RUNNING).exists():
            raise TransitionNotAllowed(f"A search for {locked_request.reference} is already running.")
        run.state = RunState.RUNNING
        run.finished_at = None
        run.save(update_fields=["state", "finished_at"])
    system_run.status = SystemStatus.PENDING
    system_run.attempts = 0
    system_run.error = ""
    system_run.requested_at = None
    system_run.finished_at = None
    system_run.save(update_fields=["status", "attempts", "error", "requested_at", "finished_at"])
    audit_event_record(
        request=locked_request, event=event_fulfilment_system_retried(actor=actor, run_id=run.pk, system=system)
    )
    _enqueue("system", system_run.pk)
    return system_run


@transaction.atomic
def system_run_switch_to_manual(*, request: DataSubjectRequest, system: str, actor: Actor) -> SystemRun:
    """A system that cannot be queried (failed, or a processor that does not answer) is asked of
    its owner instead: they get the manual task link."""
    locked_request = request_locked(request.pk)
    if not locked_request.is_open:
        raise TransitionNotAllowed(f"{locked_request.reference} is closed.")
    run = FulfilmentRun.objects.select_for_update().get(pk=_current_run(locked_request).pk)
    if run.package_kind == PackageKind.ERASURE:
        raise TransitionNotAllowed(
            f"An erasure is not retried system by system: plan {locked_request.reference} again (Plan again, or "
            "POST …/fulfilment/start/), which finds what is left and asks for approval."
        )
    if run.package_kind not in PACKAGE_KINDS.values():  # a run that tells systems what to do
        raise TransitionNotAllowed(f"{system} was told an instruction: tell it again instead of retrying a search.")
    system_run = SystemRun.objects.select_for_update().filter(run=run, system=system).first()
    if system_run is None:
        raise InvalidInput(f"{system} was not searched for {locked_request.reference}.", field="system")
    if system_run.status in (SystemStatus.DONE, SystemStatus.WAITING_MANUAL, SystemStatus.SKIPPED):
        raise TransitionNotAllowed(f"{system} is {system_run.get_status_display().lower()}; nothing to switch.")
    datamap = _datamap()
    spec = datamap.system(system)
    if spec is None or not _manual_asker:
        raise TransitionNotAllowed(f"{system} cannot be switched to its owner.")
    if run.state != RunState.RUNNING:
        run.state = RunState.RUNNING
        run.finished_at = None
        run.save(update_fields=["state", "finished_at"])
    asked = _manual_asker[0](system_run, spec, subject_for(system_run))
    system_run.status = SystemStatus.WAITING_MANUAL
    system_run.requested_at = timezone.now()
    system_run.error = ""
    system_run.finished_at = None
    system_run.save(update_fields=["status", "requested_at", "error", "finished_at"])
    audit_event_record(
        request=locked_request,
        event=event_fulfilment_system_switched_to_manual(actor=actor, run_id=run.pk, system=system, owner=spec.owner),
    )
    log.info("%s switched to manual: %s", system, asked)
    return system_run


@dataclass
class RunView:
    run: FulfilmentRun | None
    systems: list[SystemRun]


def fulfilment_of(request: DataSubjectRequest) -> RunView:
    run = FulfilmentRun.objects.filter(request=request).order_by("-started_at", "-pk").first()
    systems = list(SystemRun.objects.filter(run=run).order_by("id")) if run else []
    return RunView(run=run, systems=systems)


def run_held_purge(*, run: FulfilmentRun) -> int:
    """Delete every per-system result file of a run (after packaging, or when the request ends)."""
    purged = 0
    for system_run in SystemRun.objects.filter(run=run).exclude(result_name=""):
        held_delete(system_run.result_name)
        SystemRun.objects.filter(pk=system_run.pk).update(result_name="")
        purged += 1
    return purged


def requeue(system_run_id: int) -> None:
    """Queue a system's task again (the sweep, for a task lost with a broker restart)."""
    with transaction.atomic():
        _enqueue("system", system_run_id)


def package_requeue(run_id: int) -> None:
    """Queue a finished search's package build again (the sweep, for a build lost or failed)."""
    with transaction.atomic():
        _enqueue("package", run_id)

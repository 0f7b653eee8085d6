"""Fulfilment's Celery tasks: thin, ids only, each a no-op when redelivered after its work is done
(the services check the row's state under a lock before doing anything)."""

import logging
from contextvars import ContextVar

from celery import shared_task

from dsr.fulfilment.services import corrections, erasure, health, instructions, packages, runs, sweep

log = logging.getLogger(__name__)

# Set while a system's task runs: the last system to answer builds the package in the same worker
# process, after its own commit, instead of a second trip through the broker.
_in_system_task: ContextVar[bool] = ContextVar("in_system_task", default=False)


@shared_task(name="dsr.fulfilment.tasks.fulfilment_system_run")
def fulfilment_system_run(system_run_id: int) -> None:
    token = _in_system_task.set(True)
    try:
        runs.system_run_execute(system_run_id=system_run_id)
    finally:
        _in_system_task.reset(token)


@shared_task(name="dsr.fulfilment.tasks.fulfilment_package_build")
def fulfilment_package_build(run_id: int) -> None:
    packages.package_build(run_id=run_id)


@shared_task(name="dsr.fulfilment.tasks.fulfilment_sweep_run")
def fulfilment_sweep_run() -> dict:
    return sweep.fulfilment_sweep()


@shared_task(name="dsr.fulfilment.tasks.systems_health_run")
def systems_health_run() -> int:
    return len(health.systems_health_check())


def _system_queue(system_run_id: int, *, countdown: float = 0) -> None:
    fulfilment_system_run.apply_async((system_run_id,), countdown=countdown or None)


def _package_queue(run_id: int, *, countdown: float = 0) -> None:
    """Build now when the search finished inside a system's task (the build is idempotent; a
    failure falls back to the queue, and the sweep catches a build lost even so); else queue it
    (a processor's callback or an owner's upload finished the search in a web process)."""
    if _in_system_task.get() and not countdown:
        try:
            packages.package_build(run_id=run_id)
            return
        except Exception:
            log.exception("package of run %s not built in the system's task; queued", run_id)
    fulfilment_package_build.apply_async((run_id,), countdown=countdown or None)


runs.queue_register("system", _system_queue)
runs.queue_register("package", _package_queue)


@shared_task(name="dsr.fulfilment.tasks.erasure_system_plan")
def erasure_system_plan(system_run_id: int) -> None:
    erasure.erasure_system_plan(system_run_id=system_run_id)


@shared_task(name="dsr.fulfilment.tasks.erasure_system_execute")
def erasure_system_execute(system_run_id: int) -> None:
    erasure.erasure_system_execute(system_run_id=system_run_id)


erasure.queue_register("plan", lambda pk: erasure_system_plan.delay(pk))
erasure.queue_register("erase", lambda pk: erasure_system_execute.delay(pk))


@shared_task(name="dsr.fulfilment.tasks.instruction_execute")
def instruction_execute(system_run_id: int) -> None:
    instructions.instruction_execute(system_run_id=system_run_id)


instructions.queue_register(lambda pk, countdown: instruction_execute.apply_async((pk,), countdown=countdown or None))


@shared_task(name="dsr.fulfilment.tasks.correction_system_read")
def correction_system_read(system_run_id: int) -> None:
    corrections.correction_system_read(system_run_id=system_run_id)


corrections.queue_register("read", lambda pk: correction_system_read.delay(pk))

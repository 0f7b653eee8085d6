"""Fulfilment's Celery tasks: thin, ids only, each a no-op when redelivered after its work is done
(the services check the row's state under a lock before doing anything)."""

from celery import shared_task

from dsr.fulfilment.services import health, packages, runs, sweep


@shared_task(name="dsr.fulfilment.tasks.fulfilment_system_run")
def fulfilment_system_run(system_run_id: int) -> None:
    runs.system_run_execute(system_run_id=system_run_id)


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
    fulfilment_package_build.apply_async((run_id,), countdown=countdown or None)


runs.queue_register("system", _system_queue)
runs.queue_register("package", _package_queue)

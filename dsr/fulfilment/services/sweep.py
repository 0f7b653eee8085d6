"""Fulfilment's periodic work (beat, DSR_FULFILMENT_SWEEP_SECONDS), over indexed due dates:
expired packages deleted, manual owners reminded, systems whose task was lost queued again."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from dsr.fulfilment.models import RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import manual_tasks, packages, runs


def systems_stalled_requeue() -> int:
    """A system still pending (its task lost with a broker restart) or running past its lease (the
    worker died) is queued again; the task's claim makes a duplicate harmless."""
    now = timezone.now()
    stalled = SystemRun.objects.filter(run__state=RunState.RUNNING).filter(
        Q(status=SystemStatus.PENDING, run__started_at__lt=now - timedelta(minutes=2), finished_at__isnull=True)
        | Q(status=SystemStatus.RUNNING, requested_at__isnull=True, lease_until__lt=now)
    )
    count = 0
    for system_run_id in stalled.values_list("pk", flat=True):
        runs.requeue(system_run_id)
        count += 1
    return count


def fulfilment_sweep() -> dict:
    return {
        "packages_expired": packages.packages_expire(),
        "owners_reminded": manual_tasks.manual_tasks_remind(),
        "systems_requeued": systems_stalled_requeue(),
    }

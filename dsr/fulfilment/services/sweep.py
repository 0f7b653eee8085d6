"""Fulfilment's periodic work (beat, DSR_FULFILMENT_SWEEP_SECONDS), over indexed due dates:
expired packages deleted, manual owners reminded, systems whose task was lost queued again."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from dsr.deadlines import business_today
from dsr.errors import DsrError
from dsr.fulfilment import signing
from dsr.fulfilment.models import AccessPackage, FulfilmentRun, PackageKind, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import (
    corrections,
    erasure,
    instructions,
    manual_tasks,
    package_staff,
    packages,
    propagation,
    runs,
)
from dsr.services.audit import Actor

# A search still waiting for a system this close to the request's due date is packaged with what
# has answered; the systems still asked are listed in it as "requested from X on DATE".
PACKAGE_BEFORE_DUE_DAYS = 3
# The runs that end in an access package: a search. Erasures, restrictions, opt-outs and
# corrections tell systems what to do and have none.
SEARCH_KINDS = frozenset(runs.PACKAGE_KINDS.values())


def systems_stalled_requeue() -> int:
    """A system still pending (its task lost with a broker restart) or running past its lease (the
    worker died) is queued again; the task's claim makes a duplicate harmless."""
    now = timezone.now()
    stalled = (
        SystemRun.objects.filter(run__state=RunState.RUNNING)
        .exclude(run__package_kind__in=[PackageKind.ERASURE, PackageKind.CORRECTION])
        .filter(instruction={})  # an instruction's system is queued again by instructions.py
        .filter(
            Q(status=SystemStatus.PENDING, run__started_at__lt=now - timedelta(minutes=2), finished_at__isnull=True)
            | Q(status=SystemStatus.RUNNING, requested_at__isnull=True, lease_until__lt=now)
        )
    )
    count = 0
    for system_run_id in stalled.values_list("pk", flat=True):
        runs.requeue(system_run_id)
        count += 1
    return (
        count
        + erasure.erasure_stalled_requeue()
        + instructions.instructions_stalled_requeue()
        + corrections.correction_stalled_requeue()
    )


def packages_due_build() -> int:
    """A slow processor never holds the answer past the deadline."""
    cutoff = business_today() + timedelta(days=PACKAGE_BEFORE_DUE_DAYS)
    due = (
        FulfilmentRun.objects.filter(state=RunState.RUNNING, due_date__lte=cutoff, request__closed_at__isnull=True)
        .filter(package_kind__in=SEARCH_KINDS)
        .exclude(pk__in=AccessPackage.objects.values("run_id"))
        .filter(systems__status=SystemStatus.DONE)
        .distinct()
        .select_related("request")
    )
    built = 0
    for run in due:
        try:
            package_staff.package_build_now(request=run.request, actor=Actor.system("fulfilment"))
        except DsrError:
            continue
        built += 1
    return built


def packages_stalled_requeue() -> int:
    """A search that finished with every system answered but has no package (its build task was
    lost with a broker restart, or failed) is built again; the build is idempotent."""
    stalled = (
        FulfilmentRun.objects.filter(
            state=RunState.DONE,
            finished_at__lt=timezone.now() - timedelta(minutes=2),
            request__closed_at__isnull=True,
        )
        .filter(package_kind__in=SEARCH_KINDS)
        .exclude(pk__in=AccessPackage.objects.values("run_id"))
        .values_list("pk", flat=True)
    )
    count = 0
    for run_id in stalled:
        runs.package_requeue(run_id)
        count += 1
    return count


def fulfilment_sweep() -> dict:
    return {
        "packages_built_before_due": packages_due_build(),
        "packages_expired": packages.packages_expire(),
        "owners_reminded": manual_tasks.manual_tasks_remind(),
        "systems_requeued": systems_stalled_requeue(),
        "packages_requeued": packages_stalled_requeue(),
        "signature_nonces_purged": signing.signature_nonces_purge(),
        "propagations_flagged": propagation.propagations_unconfirmed_flag(),
    }

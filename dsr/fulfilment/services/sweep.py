"""Fulfilment's periodic work (beat, DSR_FULFILMENT_SWEEP_SECONDS), over indexed due dates:
expired packages deleted, manual owners reminded (searches and instructions alike), http systems
told and silent told once more and then escalated, systems whose task was lost queued again (an
erasure's too, once its cool-off is over)."""

from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dsr.deadlines import business_today
from dsr.errors import DsrError
from dsr.fulfilment import signing
from dsr.fulfilment.connectors.base import Instruction
from dsr.fulfilment.datamap import DataMapError, datamap_load
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
from dsr.services.emails import email_to_staff, staff_recipients

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


@transaction.atomic
def _http_instruction_nudge(system_run_id: int, *, wait: timedelta, today: date) -> str:
    """One silent http system: told once more (the same instruction, through the channel's door),
    or — once told again and silent again, or when the due date is near — the team told, once.
    Returns what was done ("resent", "escalated" or "")."""
    system_run = SystemRun.objects.select_for_update().select_related("run__request").get(pk=system_run_id)
    run = system_run.run
    if system_run.status != SystemStatus.WAITING or run.state != RunState.RUNNING or not run.request.is_open:
        return ""
    now = timezone.now()
    asked = system_run.requested_at or now
    near = run.due_date <= today + timedelta(days=manual_tasks.ESCALATE_BEFORE_DUE_DAYS)
    if system_run.resent_at is None and asked <= now - wait:
        system_run.resent_at = now
        system_run.save(update_fields=["resent_at"])
        stored = system_run.instruction
        instructions.instruction_dispatch(
            system_run=system_run,
            instruction=Instruction(
                action=stored["action"], items=tuple(stored.get("items", ())), note=stored.get("note", "")
            ),
        )
        return "resent"
    silent_again = system_run.resent_at is not None and system_run.resent_at <= now - wait and asked <= now - wait
    if system_run.escalated_at is None and (silent_again or near):
        system_run.escalated_at = now
        system_run.save(update_fields=["escalated_at"])
        try:
            spec = datamap_load().system(system_run.system)
        except DataMapError:
            spec = None
        action = system_run.instruction.get("action", "")
        email_to_staff(
            request=run.request,
            template="staff_instruction_unconfirmed",
            recipients=staff_recipients(),
            context={
                "system": {"name": system_run.system},
                "owner": {"email": spec.owner if spec else ""},
                "action": manual_tasks.ACTION_LABELS.get(action, action),
                "kind": "http",
                "asked_on": timezone.localdate(asked),
                "resent": timezone.localdate(system_run.resent_at) if system_run.resent_at else None,
                "days_left": (run.due_date - today).days,
            },
        )
        return "escalated"
    return ""


def http_instructions_nudge(*, today: date | None = None) -> dict[str, int]:
    """http systems told what to do and silent: told once more after DSR_INSTRUCTION_WAIT_HOURS,
    then the team is told (once) when still silent after as long again, or when the request's due
    date is near. Each under its row lock: two sweeps never send twice."""
    today = today or business_today()
    wait = timedelta(hours=settings.DSR_INSTRUCTION_WAIT_HOURS)
    cutoff = today + timedelta(days=manual_tasks.ESCALATE_BEFORE_DUE_DAYS)
    waiting = instructions.instructions_waiting(older_than=timedelta(0)).filter(kind="http")
    candidates = waiting.filter(
        Q(resent_at__isnull=True, requested_at__lte=timezone.now() - wait)
        | Q(escalated_at__isnull=True, resent_at__isnull=False)
        | Q(escalated_at__isnull=True, run__due_date__lte=cutoff)
    )
    done = {"resent": 0, "escalated": 0}
    for system_run_id in candidates.values_list("pk", flat=True):
        what = _http_instruction_nudge(system_run_id, wait=wait, today=today)
        if what:
            done[what] += 1
    return done


def fulfilment_sweep() -> dict:
    return {
        "packages_built_before_due": packages_due_build(),
        "packages_expired": packages.packages_expire(),
        "owners_reminded": manual_tasks.manual_tasks_remind(),
        "instructions_nudged": http_instructions_nudge(),
        "systems_requeued": systems_stalled_requeue(),
        "packages_requeued": packages_stalled_requeue(),
        "signature_nonces_purged": signing.signature_nonces_purge(),
        "propagations_flagged": propagation.propagations_unconfirmed_flag(),
    }

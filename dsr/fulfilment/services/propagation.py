"""Restriction (Art 18), opt-out of sale/sharing (§1798.120, §7026) and limit of sensitive data
(§1798.121, §7027), passed on to every system and recipient that must be told (Art 19, §7026(f)).

`propagation_start` (called by `runs.fulfilment_start` for such a request: one door) records a run
of kind `restriction` or `opt_out` and tells, through the instruction channel
(services/instructions.py), every system the data map says must be told (`systems_to_tell`) and
each of their recipients once (`recipients_tell`). The sql and django systems set the map's flags
themselves and confirm at once (connectors/flags.py); the others confirm later, through an http
callback or their owner (`instruction_confirm`). Which kind of connector carries the instruction
to a system is decided in one place, `connectors.flags.instruction_kind` (an sql or django system
with no flag for the action is told through its owner), and recorded on the system's run.

The request completes only when every system and recipient has confirmed (the channel's outcome
hook, inside its transaction), with the requester's answer listing who was told and confirmed;
the completion writes the suppression-list entry as before. A system that failed leaves the run
failed and the request open and flagged; the officer tells it again (`propagation_retry`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import formats, timezone, translation
from django.utils.translation import gettext

from dsr.deadlines import business_today
from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.fulfilment.connectors.base import Instruction
from dsr.fulfilment.connectors.flags import flag_items, instruction_kind
from dsr.fulfilment.datamap import RECIPIENT_RUN_PREFIX, DataMap, Recipient, System
from dsr.fulfilment.models import FulfilmentRun, PackageKind, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import instructions, runs
from dsr.models import DataSubjectRequest, Outcome, RequestType, Status
from dsr.services.audit import Actor, audit_event_record
from dsr.services.delivery import request_flag
from dsr.services.events import event_fulfilment_finished, event_fulfilment_started, event_fulfilment_system_retried
from dsr.services.staff_actions import request_complete
from dsr.services.transitions import request_locked

# The request types answered by telling the systems: the action each is, and the run's kind.
ACTIONS = {
    RequestType.RESTRICTION: "restrict",
    RequestType.OPT_OUT_SALE: "opt_out_sale",
    RequestType.LIMIT_SENSITIVE: "limit_sensitive",
}
RUN_KINDS = {
    RequestType.RESTRICTION: PackageKind.RESTRICTION,
    RequestType.OPT_OUT_SALE: PackageKind.OPT_OUT,
    RequestType.LIMIT_SENSITIVE: PackageKind.OPT_OUT,
}
SENSITIVE = "sensitive_personal_information"
OUTCOMES = frozenset({SystemStatus.DONE, SystemStatus.FAILED})
# Like the manual owners' escalation: this close to the due date an unconfirmed system is the team's.
ESCALATE_BEFORE_DUE_DAYS = 5

# What a system's owner (or a recipient) reads: staff-facing English, like the owners' task emails.
NOTES = {
    "restrict": (
        "Restrict the processing of this person's personal data (GDPR Art 18): keep it stored, but do not "
        "use it for anything else until we tell you the restriction is lifted."
    ),
    "opt_out_sale": (
        "This person has opted out of the sale and sharing of their personal information (CCPA §1798.120, "
        "§7026): stop selling or sharing it, and do not sell or share it again."
    ),
    "limit_sensitive": (
        "This person has asked to limit the use of their sensitive personal information (CCPA §1798.121, "
        "§7027): use it only as §7027(m) allows (to provide the service they asked for, security, safety)."
    ),
}


# --- Who is told --------------------------------------------------------------------------------------


def systems_to_tell(datamap: DataMap, action: str) -> list[System]:
    """The systems that must be told, in the map's order: for an opt-out of sale/sharing every
    system that sells or shares (a recipient `sold` or `shared`) or marks the opt-out (a
    `flags.opt_out_sale`); for a limit every system holding sensitive personal information; for a
    restriction every system (any may hold the person's data: each looks, and one holding nothing
    of theirs confirms with nothing marked)."""
    if action == "opt_out_sale":
        return [s for s in datamap.systems if s.sold or s.shared or any(action in c.flags for c in s.collections)]
    if action == "limit_sensitive":
        return [s for s in datamap.systems if any(f.category == SENSITIVE for c in s.collections for f in c.fields)]
    if action == "restrict":
        return list(datamap.systems)
    raise ValueError(f"not an action passed on: {action}")


def recipients_of(systems: list[System], action: str) -> list[tuple[Recipient, System]]:
    """Each recipient of `systems` that must be told, once, with the first system listing it: for
    an opt-out of sale/sharing the third parties it was sold or shared to (§7026(f)); for a
    restriction or a limit every recipient (Art 19; service providers and contractors, §7027)."""
    found: dict[str, tuple[Recipient, System]] = {}
    for system in systems:
        for recipient in system.recipients:
            if action == "opt_out_sale" and not (recipient.sold or recipient.shared):
                continue
            found.setdefault(recipient.key, (recipient, system))
    return list(found.values())


def recipient_system(datamap: DataMap, name: str) -> System | None:
    """The channel's resolver for `recipient:<name>`: the http or manual system that stands for it
    (`system:`), or a manual system whose owner is its `contact`; a recipient with neither is told
    through the owner of the system that lists it (who passes it on)."""
    if not name.startswith(RECIPIENT_RUN_PREFIX):
        return None
    for system in datamap.systems:
        for recipient in system.recipients:
            if recipient.key != name:
                continue
            if recipient.system:
                return datamap.system(recipient.system)
            instructions_text = (
                f"Pass this on to {recipient.name} ({recipient.category}), who received the data from "
                f"{system.name}, and confirm once they have."
                if not recipient.contact
                else f"You receive personal data from us as {recipient.name} ({recipient.category})."
            )
            return System(
                name=name,
                owner=recipient.contact or system.owner,
                kind="manual",
                connection={"instructions": instructions_text},
                categories=(),
                sources=(),
                purposes=(),
                recipients=(),
                retention="",
                collections=(),
                references=(),
                description=f"Recipient {recipient.name} of {system.name}",
            )
    return None


def _told_as(datamap: DataMap, name: str, action: str) -> System | None:
    """The system (or recipient) `name` as it is told `action`: its kind is the one that carries it."""
    system = instructions.system_resolve(datamap, name)
    if system is None:
        return None
    return replace(system, kind=instruction_kind(system, action))


def instruction_for(system: System, action: str) -> Instruction:
    """What `system` is told of a restriction or an opt-out: the map's flag fields (empty where it
    declares none: the identities are sent with every instruction) and, for a human owner, what is asked."""
    return Instruction(action=action, items=flag_items(system, action), note=NOTES[action])


def _for_recipient(target: System, instruction: Instruction, recipient: Recipient) -> Instruction:
    """A recipient's instruction: a flag action's items are the target's own flags (a recipient that
    stands for a system of the map); any other action (erase, correct) keeps the caller's items."""
    base = instruction_for(target, instruction.action) if instruction.action in NOTES else instruction
    notes = [n for n in dict.fromkeys((instruction.note, base.note)) if n]
    notes.append(f"You are listed as a recipient of this data: {recipient.name} ({recipient.category}).")
    return replace(base, note="\n".join(notes))


# --- The run -------------------------------------------------------------------------------------------


def _system_runs_create(run: FulfilmentRun, told: dict[str, System]) -> None:
    """Each system run with the kind that carries the action (`instruction_kind`), so the channel
    tells it through that kind; instructions_send then dispatches them."""
    existing = set(SystemRun.objects.filter(run=run).values_list("system", flat=True))
    SystemRun.objects.bulk_create(
        [SystemRun(run=run, system=name, kind=system.kind) for name, system in told.items() if name not in existing]
    )


def recipients_tell(*, run: FulfilmentRun, instruction: Instruction, systems: list[System]) -> list[SystemRun]:
    """Tell each recipient of `systems` once (a system run `recipient:<name>`), inside the caller's
    transaction. A recipient that stands for a system already told in this run is not told again.
    Any action: erasure and corrections (Art 19) may call it with their own instruction, whose items
    each recipient is told; an opt-out of sale/sharing tells only those it was sold or shared to."""
    datamap = runs._datamap()
    action = instruction.action
    told = set(SystemRun.objects.filter(run=run).exclude(instruction={}).values_list("system", flat=True))
    targets: dict[str, System] = {}
    sent: dict[str, Instruction] = {}
    for recipient, _listed_by in recipients_of(systems, action):
        if recipient.key in told or (recipient.system and recipient.system in told):
            continue  # told in this run already (itself, or the system that stands for it)
        target = _told_as(datamap, recipient.key, action)
        if target is None:
            continue
        targets[recipient.key] = target
        sent[recipient.key] = _for_recipient(target, instruction, recipient)
    _system_runs_create(run, targets)
    return instructions.instructions_send(run=run, instructions=sent) if sent else []


def recipient_name(datamap: DataMap | None, run_name: str) -> str:
    """A recipient's name as the map gives it, from its system run's name (`recipient:<key>`)."""
    for system in datamap.systems if datamap else ():
        for recipient in system.recipients:
            if recipient.key == run_name:
                return recipient.name
    return run_name.removeprefix(RECIPIENT_RUN_PREFIX)


def recipients_told_lines(system_runs: list[SystemRun], datamap: DataMap | None) -> list[str]:
    """For a requester's answer, in the active language: each recipient told in the run, and the
    date it confirmed (or that its confirmation is awaited). Empty when none was told."""
    lines = []
    for s in system_runs:
        if not s.system.startswith(RECIPIENT_RUN_PREFIX):
            continue
        name = recipient_name(datamap, s.system)
        if s.status == SystemStatus.DONE and s.confirmed_at:
            when = formats.date_format(timezone.localtime(s.confirmed_at).date())
            lines.append("- " + gettext("%(name)s: confirmed on %(date)s.") % {"name": name, "date": when})
        else:
            lines.append("- " + gettext("%(name)s: told; we are waiting for its confirmation.") % {"name": name})
    return lines


CORRECTION_NOTE = (
    "Correct the personal information of the person identified here that we disclosed to you: each item "
    "names the field and its corrected value (the collection and key are ours). Confirm when it is done (GDPR "
    "Art 16 and Art 19; CCPA §1798.106, §7023(c))."
)


def recipients_tell_corrections(run: FulfilmentRun, corrected: dict[str, Instruction]) -> list[SystemRun]:
    """Corrections' Art 19 hook: the recipients of every corrected system are told once, with
    every correction those systems confirmed (a recipient of two systems gets both)."""
    datamap = runs._datamap()
    systems = [spec for name in corrected if (spec := datamap.system(name)) is not None]
    items = tuple(item for instruction in corrected.values() for item in instruction.items)
    if not systems or not items:
        return []
    return recipients_tell(
        run=run, instruction=Instruction(action="correct", items=items, note=CORRECTION_NOTE), systems=systems
    )


def propagation_start(*, locked: DataSubjectRequest, actor: Actor) -> FulfilmentRun:
    """Called by runs.fulfilment_start inside its transaction, the request locked and checked."""
    datamap = runs._datamap()
    request_type = RequestType(locked.request_type)
    action = ACTIONS[request_type]
    if FulfilmentRun.objects.filter(request=locked, package_kind=RUN_KINDS[request_type], state=RunState.DONE).exists():
        raise TransitionNotAllowed(f"Every system has confirmed {locked.reference} already.")
    run = runs.run_create(
        locked=locked, datamap=datamap, package_kind=RUN_KINDS[request_type], actor=actor,
        busy=f"The systems are already being told of {locked.reference}.",
    )  # fmt: skip
    systems = systems_to_tell(datamap, action)
    told = {s.name: replace(s, kind=instruction_kind(s, action)) for s in systems}
    _system_runs_create(run, told)
    instructions.instructions_send(run=run, instructions={n: instruction_for(s, action) for n, s in told.items()})
    recipients_tell(run=run, instruction=Instruction(action=action), systems=systems)
    names = list(SystemRun.objects.filter(run=run).order_by("id").values_list("system", flat=True))
    audit_event_record(
        request=locked,
        event=event_fulfilment_started(
            actor=actor,
            run_id=run.pk,
            datamap_version=datamap.version,
            systems=names,
            package_kind=run.package_kind,
            since=None,
        ),
    )
    if not names:  # nothing in the map must be told: answered at once
        propagation_finish_if_complete(run.pk)
    return run


def propagation_finish_if_complete(run_id: int) -> None:
    """The channel's outcome hook (inside its transaction): once every system and recipient is
    confirmed or failed, the run ends; all confirmed completes the request with its answer, any
    failure flags it for the team (it stays open; a failed system is told again)."""
    system_runs = list(SystemRun.objects.filter(run_id=run_id).order_by("id"))
    if any(s.status not in OUTCOMES for s in system_runs):
        return
    run = FulfilmentRun.objects.select_for_update().select_related("request").get(pk=run_id)
    if run.state != RunState.RUNNING:
        return
    request = request_locked(run.request_id)
    failed = [s.system for s in system_runs if s.status == SystemStatus.FAILED]
    run.state = RunState.FAILED if failed else RunState.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "finished_at"])
    audit_event_record(
        request=request,
        event=event_fulfilment_finished(
            run_id=run.pk, state=run.state, records=sum(s.records for s in system_runs), failed=failed
        ),
    )
    if failed:
        request_flag(request_id=request.pk, reason=f"Not confirmed by {', '.join(failed)}", data={"systems": failed})
        return
    if request.status not in (Status.VERIFIED, Status.IN_PROGRESS):
        return  # closed meanwhile (cancelled), or waiting for the requester: nothing to answer now
    request_complete(
        request=request,
        actor=Actor.system("fulfilment"),
        message=propagation_answer_message(run, request.language, system_runs=system_runs),
        outcome=Outcome.COMPLIED,
    )


@transaction.atomic
def propagation_retry(*, request: DataSubjectRequest, system: str, actor: Actor) -> SystemRun:
    """Tell one failed system (or recipient) again; the others keep their confirmations."""
    locked = request_locked(request.pk)
    if not locked.is_open:
        raise TransitionNotAllowed(f"{locked.reference} is closed; nothing is told again.")
    run = (
        FulfilmentRun.objects.select_for_update()
        .filter(request=locked, package_kind__in=set(RUN_KINDS.values()))
        .order_by("-started_at", "-pk")
        .first()
    )
    if run is None:
        raise TransitionNotAllowed(f"No system has been told of {locked.reference} yet.")
    system_run = SystemRun.objects.select_for_update().filter(run=run, system=system).first()
    if system_run is None:
        raise InvalidInput(f"{system} was not told of {locked.reference}.", field="system")
    if system_run.status != SystemStatus.FAILED:
        raise TransitionNotAllowed(
            f"{system} is {system_run.get_status_display().lower()}; only a failed system is told again."
        )
    if run.state != RunState.RUNNING:
        run.state = RunState.RUNNING
        run.finished_at = None
        run.save(update_fields=["state", "finished_at"])
    audit_event_record(request=locked, event=event_fulfilment_system_retried(actor=actor, run_id=run.pk, system=system))
    return instructions.instruction_retell(system_run_id=system_run.pk)


def propagations_unconfirmed_flag() -> int:
    """The sweep: a run still waiting within ESCALATE_BEFORE_DUE_DAYS of its request's due date
    (§7026(f): 15 business days for an opt-out) flags the request for the team, naming who has not
    confirmed — once (a flagged request is not flagged again). Returns the requests flagged."""
    cutoff = business_today() + timedelta(days=ESCALATE_BEFORE_DUE_DAYS)
    due = FulfilmentRun.objects.filter(
        state=RunState.RUNNING,
        package_kind__in=set(RUN_KINDS.values()),
        due_date__lte=cutoff,
        request__flagged_at__isnull=True,
        request__closed_at__isnull=True,
    ).values_list("pk", "request_id", "due_date")
    flagged = 0
    for run_id, request_id, due_date in due:
        names = list(
            SystemRun.objects.filter(run_id=run_id).exclude(status=SystemStatus.DONE).values_list("system", flat=True)
        )
        if not names:
            continue
        with transaction.atomic():
            reason = f"Due {due_date.isoformat()}; not yet confirmed by {', '.join(names)}"
            flagged += request_flag(request_id=request_id, reason=reason, data={"systems": names})
    return flagged


# --- What the officer and the requester see ---------------------------------------------------------------


def told_state(system_run: SystemRun) -> str:
    """told | waiting | confirmed | failed."""
    if system_run.status == SystemStatus.DONE:
        return "confirmed"
    if system_run.status == SystemStatus.FAILED:
        return "failed"
    if system_run.status == SystemStatus.WAITING:
        return "waiting"
    return "told"


def propagation_view(run: FulfilmentRun | None, system_runs: list[SystemRun]) -> dict[str, Any] | None:
    """`"told"` of `GET …/fulfilment/`: each system and recipient with its state and dates."""
    if run is None or run.package_kind not in set(RUN_KINDS.values()):
        return None
    told = []
    for s in system_runs:
        is_recipient = s.system.startswith(RECIPIENT_RUN_PREFIX)
        told.append(
            {
                "name": s.system,
                "recipient": is_recipient,
                "kind": s.kind,
                "action": s.instruction.get("action", ""),
                "state": told_state(s),
                "told_at": s.started_at,
                "waiting_since": s.requested_at,
                "confirmed_at": s.confirmed_at,
                "failed_at": s.finished_at if s.status == SystemStatus.FAILED else None,
                "confirmed_by": s.instructed.get("by", "") if s.status == SystemStatus.DONE else "",
                "counts": s.instructed.get("counts", {}),
                "error": s.error,
            }
        )
    return {"action": next((t["action"] for t in told if t["action"]), ""), "systems": told}


def _display_name(system_run: SystemRun, datamap: DataMap | None) -> str:
    if not system_run.system.startswith(RECIPIENT_RUN_PREFIX) or datamap is None:
        return system_run.system
    for system in datamap.systems:
        for recipient in system.recipients:
            if recipient.key == system_run.system:
                return recipient.name
    return system_run.system


def propagation_answer_message(
    run: FulfilmentRun, language: str, *, system_runs: list[SystemRun] | None = None, datamap: DataMap | None = None
) -> str:
    """The requester's answer, in their language: what was done, and who was told and confirmed —
    our systems and the third parties and service providers (§7026(f), Art 19). Names and dates
    only, never a piece of personal data."""
    if system_runs is None:
        system_runs = list(SystemRun.objects.filter(run=run).order_by("id"))
    if datamap is None:
        try:
            datamap = runs._datamap()
        except runs.FulfilmentUnavailable:
            datamap = None
    request_type = run.request.request_type
    with translation.override(language):
        if request_type == RequestType.RESTRICTION:
            lines = [gettext("We have restricted the use of your personal information: we keep it, but do not use it.")]
        elif request_type == RequestType.LIMIT_SENSITIVE:
            lines = [gettext("We have limited the use of your sensitive personal information to what the law allows.")]
        else:
            lines = [gettext("We have stopped selling and sharing your personal information.")]
        ours = [s for s in system_runs if not s.system.startswith(RECIPIENT_RUN_PREFIX)]
        theirs = [s for s in system_runs if s.system.startswith(RECIPIENT_RUN_PREFIX)]
        if ours:
            lines.append(gettext("Our systems that were told, and confirmed:"))
            lines.extend(_confirmed_line(s, datamap) for s in ours)
        if theirs:
            lines.append(gettext("The third parties and service providers we told, and who confirmed:"))
            lines.extend(_confirmed_line(s, datamap) for s in theirs)
        if not system_runs:
            lines.append(gettext("None of our systems or recipients needed to be told."))
        lines.append(gettext("We keep a record of your request, as the law requires."))
        return "\n".join(lines)


def _confirmed_line(system_run: SystemRun, datamap: DataMap | None) -> str:
    name = _display_name(system_run, datamap)
    if system_run.status == SystemStatus.DONE and system_run.confirmed_at:
        when = timezone.localtime(system_run.confirmed_at).date().isoformat()
        return "- " + gettext("%(name)s: confirmed on %(date)s") % {"name": name, "date": when}
    return "- " + gettext("%(name)s: told; not yet confirmed") % {"name": name}


for _request_type in ACTIONS:
    runs.type_starter_register(_request_type, propagation_start)
for _kind in set(RUN_KINDS.values()):
    instructions.instruction_outcome_register(_kind, propagation_finish_if_complete)
instructions.system_resolver_register(recipient_system)

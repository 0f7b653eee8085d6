"""Manual systems' owner tasks: a system nobody can query (or one the officer switched to its
owner) is asked of the person who owns it, by email, with a private link and no staff account.
On that page the owner sees whom to search for and what, and uploads the export — a CSV or JSON
file per collection, checked whole against the data map before anything is kept — or says the
system holds nothing about the person. Either goes through the run like any connector's answer.

The sweep (`manual_tasks_remind`) reminds owners who have not answered every
DSR_MANUAL_REMIND_DAYS (or the system's `remind_days`), and tells the team once when the
request's due date is near and an owner is still silent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from dsr.csv_export import CsvUnreadable, csv_rows
from dsr.deadlines import business_today
from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.fulfilment.connectors.base import Instruction, Subject
from dsr.fulfilment.crypto import token_digest, token_new
from dsr.fulfilment.datamap import Collection, DataMap, DataMapError, System, datamap_load
from dsr.fulfilment.models import ManualTask, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import instructions, runs
from dsr.services.audit import audit_event_record
from dsr.services.emails import email_queue, email_to_staff, staff_recipients
from dsr.services.events import event_fulfilment_manual_answered
from dsr.services.transitions import request_locked

log = logging.getLogger(__name__)

# The team is told when an owner is still silent this many days before the request's due date.
ESCALATE_BEFORE_DUE_DAYS = 5
UPLOAD_KINDS = ("csv", "json")


# --- The link -------------------------------------------------------------------------------------


def manual_task_token(seed: str) -> str:
    """The task link's token, from its seed and the secret key: the same link in every reminder."""
    mac = hmac.new(settings.SECRET_KEY.encode(), b"dsr-manual-task\x00" + seed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def manual_task_url(task: ManualTask) -> str:
    token = manual_task_token(task.token_seed)
    return settings.SITE_URL + reverse("fulfilment-systems:task", args=[token])


def manual_task_by_token(token: str) -> ManualTask | None:
    if not token or len(token) > 64:
        return None
    return (
        ManualTask.objects.select_related("system_run__run__request").filter(token_digest=token_digest(token)).first()
    )


def _remind_days(system: System | None) -> int:
    days = system.connection.get("remind_days") if system and system.kind == "manual" else None
    return max(1, int(days or settings.DSR_MANUAL_REMIND_DAYS))


def _system_context(system: System) -> dict[str, str]:
    return {"name": system.name, "description": system.description, "owner": system.owner}


# --- Asking the owner (runs' manual asker) --------------------------------------------------------


def _task_reset(system_run: SystemRun, system: System, today: date) -> ManualTask:
    """The owner's task for this system run, made or made new: a fresh link (seed), the reminder
    date from today, every earlier answer and reminder cleared."""
    seed = token_new()
    task, _ = ManualTask.objects.update_or_create(
        system_run=system_run,
        defaults={
            "owner_email": system.owner,
            "token_seed": seed,
            "token_digest": token_digest(manual_task_token(seed)),
            "created_at": timezone.now(),
            "remind_on": today + timedelta(days=_remind_days(system)),
            "reminded_at": None,
            "escalated_at": None,
            "answered_at": None,
            "nothing_held": False,
            "upload_name": "",
        },
    )
    return task


@transaction.atomic
def manual_task_open(system_run: SystemRun, system: System, subject: Subject) -> str:
    """Open (or open again, with a new link) the owner's task and email them; returns what was
    asked, for the timeline. The email carries the link and the request's reference and due date,
    never the person's identity: that is on the page behind the link."""
    today = business_today()
    task = _task_reset(system_run, system, today)
    request = system_run.run.request
    email_queue(
        template="owner_task",
        to=system.owner,
        language=settings.LANGUAGE_CODE,
        context={"request": request, "system": _system_context(system), "task_url": manual_task_url(task)},
        request=request,
    )
    return f"asked {system.owner} on {today.isoformat()}"


# --- Telling the owner what to do (the manual instruction handler, connectors/manual_instruct.py) --


def system_run_of(subject: Subject) -> SystemRun:
    """The system run a subject was made for: its task key is "<reference>:<run>:<system>"
    (runs.subject_for), checked against the request's reference."""
    reference, _, rest = subject.task_key.partition(":")
    run_id, _, system = rest.partition(":")
    system_run = (
        SystemRun.objects.select_related("run__request")
        .filter(run_id=int(run_id) if run_id.isdigit() else 0, system=system, run__request__reference=reference)
        .first()
    )
    if system_run is None:
        raise InvalidInput(f"no system run for the task key {subject.task_key!r}", field="task_key")
    return system_run


@transaction.atomic
def manual_instruction_open(system: System, subject: Subject, instruction: Instruction) -> str:
    """Open (or open again, with a new link) the owner's task for an instruction and email them
    the link; returns what was asked, for the timeline. As for a search, the email carries the
    request's reference and due date, the action and the link; the list is behind the link."""
    system_run = system_run_of(subject)
    today = business_today()
    task = _task_reset(system_run, system, today)
    request = system_run.run.request
    email_queue(
        template="owner_instruction",
        to=system.owner,
        language=settings.LANGUAGE_CODE,
        context={
            "request": request,
            "system": _system_context(system),
            "task_url": manual_task_url(task),
            "action": ACTION_LABELS.get(instruction.action, instruction.action),
        },
        request=request,
    )
    return f"asked {system.owner} on {today.isoformat()} to {ACTION_LABELS.get(instruction.action, instruction.action)}"


# What the owner is asked to do, as the page and the emails say it.
ACTION_LABELS = {
    "erase": "erase the person's records",
    "restrict": "restrict the processing of the person's records",
    "opt_out_sale": "stop selling or sharing the person's data",
    "limit_sensitive": "limit the use of the person's sensitive data",
    "correct": "correct the person's records",
}


def instruction_lines(instruction: dict[str, Any], system: System | None) -> list[dict[str, Any]]:
    """The exact list on the owner's page, one entry per item: the collection, the keys (or, when
    none were found, the identities to look for), and what to do with which fields."""
    lines = []
    for item in instruction.get("items", []):
        name = item.get("collection", "")
        collection = next((c for c in system.collections if c.name == name), None) if system else None
        keys = [str(k) for k in item.get("keys", [])]
        if "key" in item:
            keys = [str(item["key"])]
        if instruction.get("action") == "erase":
            fields = list(item.get("fields", []))
            what = (
                "delete the rows"
                if item.get("delete")
                else ("erase the fields " + ", ".join(fields) if fields else "erase the person's details")
            )
        elif instruction.get("action") == "correct":
            what = f"set {item.get('field', '')} to {item.get('value', '')!s}"
        else:
            flags = item.get("set", {})
            what = "set " + ", ".join(f"{k} = {v}" for k, v in flags.items()) if flags else "flag the records"
        lines.append(
            {
                "collection": item.get("collection", ""),
                "keys": keys,
                "primary_key": collection.primary_key if collection else "",
                "identities": dict(collection.identities) if collection and not keys else {},
                "what": what,
            }
        )
    return lines


# --- The owner's page -------------------------------------------------------------------------------


@dataclass
class TaskPage:
    """What the owner's page shows."""

    task: ManualTask
    system: System | None  # None when the map no longer lists it
    reference: str
    due_date: date
    identities: dict[str, str]
    instructions: str
    open: bool  # the search still waits for this answer
    closed_reason: str
    # An instruction's task (erase, restrict, …): the action and the exact list; else a search.
    action: str = ""
    lines: list[dict[str, Any]] | None = None
    note: str = ""


def manual_task_page(task: ManualTask, datamap: DataMap | None = None) -> TaskPage:
    system_run = task.system_run
    run = system_run.run
    try:
        system = instructions.system_resolve(datamap or datamap_load(), system_run.system)
    except DataMapError:
        system = None
    closed_reason = ""
    instruction = system_run.instruction or {}
    waiting = SystemStatus.WAITING if instruction else SystemStatus.WAITING_MANUAL
    if task.answered_at:
        closed_reason = "answered"
    elif run.state != RunState.RUNNING or not run.request.is_open:
        closed_reason = "The request this task belongs to has ended: nothing more is needed from you."
    elif system_run.status != waiting:
        closed_reason = "This system no longer waits for your answer: nothing more is needed from you."
    elif system is None:
        closed_reason = "This system is no longer in the data map; the privacy team has been told."
    return TaskPage(
        task=task,
        system=system,
        reference=run.request.reference,
        due_date=run.due_date,
        identities=runs.subject_for(system_run).identities,
        instructions=str(system.connection.get("instructions", "")) if system and system.kind == "manual" else "",
        open=not closed_reason,
        closed_reason=closed_reason,
        action=instruction.get("action", ""),
        lines=instruction_lines(instruction, system) if instruction else None,
        note=str(instruction.get("note", "")),
    )


def manual_instruction_answer(*, task: ManualTask, done: bool, counts: dict[str, int], reason: str) -> None:
    """The owner's answer to an instruction: done (optionally with the rows changed per collection)
    or could not, with the reason. Goes to the instruction channel (instruction_confirm /
    instruction_refuse). Raises InvalidInput (a count for a collection the system does not have, no
    reason) or TransitionNotAllowed (answered, or no longer waiting)."""
    page = manual_task_page(task)
    if not page.open or page.lines is None:
        raise TransitionNotAllowed(
            "This task has already been answered."
            if page.closed_reason == "answered"
            else page.closed_reason or "This task does not ask you to do anything."
        )
    system = page.system
    assert system is not None  # an open page has its system
    names = {c.name for c in system.collections}
    for collection, value in counts.items():
        if collection not in names:
            raise InvalidInput(f"'{collection}' is not a collection of {system.name}.", field=f"count_{collection}")
        if value < 0:
            raise InvalidInput(f"The count for {collection} must be 0 or more.", field=f"count_{collection}")
    reason = " ".join((reason or "").split())
    if not done and not reason:
        raise InvalidInput("Say why it could not be done, so the privacy team can act on it.", field="reason")
    with transaction.atomic():
        locked = ManualTask.objects.select_for_update().get(pk=task.pk)
        if locked.answered_at:
            raise TransitionNotAllowed("This task has already been answered.")
        system_run = SystemRun.objects.select_related("run").get(pk=locked.system_run_id)
        if system_run.status != SystemStatus.WAITING or system_run.run.state != RunState.RUNNING:
            raise TransitionNotAllowed("This system no longer waits for your answer: nothing more is needed from you.")
        locked.answered_at = timezone.now()
        locked.save(update_fields=["answered_at"])
        by = f"{locked.owner_email} (owner)"
        if done:
            instructions.instruction_confirm(system_run_id=system_run.pk, counts=counts, by=by)
        else:
            instructions.instruction_refuse(
                system_run_id=system_run.pk, error=f"{system.name}'s owner could not do it: {reason[:500]}", by=by
            )


# --- The owner's answer -------------------------------------------------------------------------------


def _file_kind(upload: UploadedFile, content: str) -> str:
    name = (upload.name or "").lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".csv") or name.endswith(".txt"):
        return "csv"
    return "json" if content.lstrip()[:1] in ("[", "{") else "csv"


def _unknown_field(collection: Collection, file_name: str, column: str, where: str) -> InvalidInput:
    return InvalidInput(
        f"{file_name}: {where} '{column}' is not a field of {collection.name} (its fields: "
        f"{', '.join(collection.field_names)}). Rename or remove it and upload the file again.",
        field=f"file_{collection.name}",
    )


def _csv_records(collection: Collection, file_name: str, content: str) -> list[dict[str, Any]]:
    field = f"file_{collection.name}"
    rows = csv_rows(content)
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        raise InvalidInput(f"{file_name} is empty: the first line names the columns.", field=field) from None
    except CsvUnreadable as error:
        raise InvalidInput(f"{file_name} is not a readable CSV file ({error}).", field=field) from None
    if not any(header):
        raise InvalidInput(f"{file_name}: the first line must name the columns.", field=field)
    seen = set()
    for column in header:
        if not column:
            raise InvalidInput(f"{file_name}: a column has no name in the first line.", field=field)
        if collection.field(column) is None:
            raise _unknown_field(collection, file_name, column, "column")
        if column in seen:
            raise InvalidInput(f"{file_name}: the column '{column}' appears twice.", field=field)
        seen.add(column)
    records = []
    try:
        for number, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            if len(row) > len(header):
                raise InvalidInput(
                    f"{file_name}, line {number}: {len(row)} values for {len(header)} columns.", field=field
                )
            records.append({column: (row[i] if i < len(row) else "") for i, column in enumerate(header)})
    except CsvUnreadable as error:
        raise InvalidInput(f"{file_name} is not a readable CSV file ({error}).", field=field) from None
    return records


def _json_records(collection: Collection, file_name: str, content: str) -> list[dict[str, Any]]:
    field = f"file_{collection.name}"
    try:
        document = json.loads(content)
    except ValueError as error:
        raise InvalidInput(f"{file_name} is not valid JSON ({error}).", field=field) from None
    if isinstance(document, dict):
        if set(document) != {collection.name}:
            raise InvalidInput(
                f"{file_name}: a JSON object must hold one key, '{collection.name}', with the list of records "
                "(or give the list itself).",
                field=field,
            )
        document = document[collection.name]
    if not isinstance(document, list):
        raise InvalidInput(f"{file_name}: give a JSON list of records, one object each.", field=field)
    for index, record in enumerate(document):
        if not isinstance(record, dict):
            raise InvalidInput(f"{file_name}: record {index + 1} is not an object.", field=field)
        for key in record:
            if collection.field(key) is None:
                raise _unknown_field(collection, file_name, key, f"record {index + 1} has the field")
    return document


def upload_records(collection: Collection, upload: UploadedFile) -> list[dict[str, Any]]:
    """The records of one collection's uploaded export (CSV or JSON), every column or key a field
    the data map lists. Raises InvalidInput naming the file, the place and what to do."""
    field = f"file_{collection.name}"
    file_name = upload.name or f"{collection.name} file"
    if upload.size and upload.size > settings.DSR_UPLOAD_MAX_BYTES:
        raise InvalidInput(
            f"{file_name} is {upload.size} bytes; the limit is {settings.DSR_UPLOAD_MAX_BYTES} bytes "
            "(DSR_UPLOAD_MAX_BYTES). Export only the matching rows.",
            field=field,
        )
    raw = upload.read(settings.DSR_UPLOAD_MAX_BYTES + 1)
    if len(raw) > settings.DSR_UPLOAD_MAX_BYTES:
        raise InvalidInput(f"{file_name} is larger than {settings.DSR_UPLOAD_MAX_BYTES} bytes.", field=field)
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file_name} is not UTF-8 text: export it as CSV (UTF-8) or JSON.", field=field) from None
    if _file_kind(upload, content) == "json":
        return _json_records(collection, file_name, content)
    return _csv_records(collection, file_name, content)


def manual_task_answer(*, task: ManualTask, uploads: dict[str, UploadedFile], nothing_held: bool) -> int:
    """Record the owner's answer: the uploaded exports (collection name -> file) or "nothing held".
    Every file is read and checked before anything is kept, so a refused upload loses nothing and
    records nothing. Returns the records kept. Raises InvalidInput (a bad file, an unknown
    collection, neither or both answers) or TransitionNotAllowed (answered, or no longer waiting)."""
    page = manual_task_page(task)
    if not page.open:
        raise TransitionNotAllowed(
            "This task has already been answered." if page.closed_reason == "answered" else page.closed_reason
        )
    system = page.system
    assert system is not None  # an open page has its system
    names = {c.name for c in system.collections}
    unknown = sorted(set(uploads) - names)
    if unknown:
        raise InvalidInput(
            f"'{unknown[0]}' is not a collection of {system.name} (one of: {', '.join(sorted(names))}).",
            field="collection",
        )
    if nothing_held and uploads:
        raise InvalidInput(
            "Either upload what the system holds or say it holds nothing, not both.", field="nothing_held"
        )
    if not nothing_held and not uploads:
        raise InvalidInput(
            "Upload the export of at least one collection, or confirm that the system holds nothing about this person.",
            field="nothing_held",
        )
    pairs: list[tuple[str, dict[str, Any]]] = []
    for collection in system.collections:
        if collection.name in uploads:
            pairs += [(collection.name, r) for r in upload_records(collection, uploads[collection.name])]
    with transaction.atomic():
        locked = ManualTask.objects.select_for_update().get(pk=task.pk)
        system_run = SystemRun.objects.select_related("run").get(pk=locked.system_run_id)
        if locked.answered_at:
            raise TransitionNotAllowed("This task has already been answered.")
        if system_run.status != SystemStatus.WAITING_MANUAL or system_run.run.state != RunState.RUNNING:
            raise TransitionNotAllowed("This system no longer waits for your answer: nothing more is needed from you.")
        kept = runs.system_run_records_receive(system_run=system_run, records=pairs)
        locked.answered_at = timezone.now()
        locked.nothing_held = nothing_held
        locked.upload_name = "; ".join(f"{name}: {uploads[name].name}" for name in sorted(uploads))[:255]
        locked.save(update_fields=["answered_at", "nothing_held", "upload_name"])
        request = request_locked(system_run.run.request_id)
        audit_event_record(
            request=request,
            event=event_fulfilment_manual_answered(
                run_id=system_run.run_id,
                system=system_run.system,
                owner=locked.owner_email,
                nothing_held=nothing_held,
                records=kept,
            ),
        )
    return kept


# --- Reminders and escalation (the fulfilment sweep) -----------------------------------------------


def _waiting():
    # A search's owner (waiting for the owner) or an instruction's (waiting for confirmation).
    return ManualTask.objects.filter(
        answered_at__isnull=True,
        system_run__status__in=[SystemStatus.WAITING_MANUAL, SystemStatus.WAITING],
        system_run__run__state=RunState.RUNNING,
        system_run__run__request__closed_at__isnull=True,
    )


@transaction.atomic
def _remind(task_id: int, today: date, datamap: DataMap | None) -> bool:
    task = _waiting().select_for_update(of=("self",)).filter(pk=task_id, remind_on__lte=today).first()
    if task is None:  # answered meanwhile, or reminded by a concurrent sweep
        return False
    task = ManualTask.objects.select_related("system_run__run__request").get(pk=task.pk)
    system = instructions.system_resolve(datamap, task.system_run.system) if datamap else None
    request = task.system_run.run.request
    task.reminded_at = timezone.now()
    task.remind_on = today + timedelta(days=_remind_days(system))
    task.save(update_fields=["reminded_at", "remind_on"])
    action = (task.system_run.instruction or {}).get("action", "")
    email_queue(
        template="owner_instruction_reminder" if action else "owner_reminder",
        to=task.owner_email,
        language=settings.LANGUAGE_CODE,
        context={
            "request": request,
            "action": ACTION_LABELS.get(action, action),
            "system": _system_context(system) if system else {"name": task.system_run.system},
            "task_url": manual_task_url(task),
            "asked_on": timezone.localdate(task.created_at),
            "days_left": (task.system_run.run.due_date - today).days,
        },
        request=request,
    )
    return True


@transaction.atomic
def _escalate(task_id: int, today: date, datamap: DataMap | None) -> bool:
    cutoff = today + timedelta(days=ESCALATE_BEFORE_DUE_DAYS)
    task = (
        _waiting()
        .select_for_update(of=("self",))
        .filter(pk=task_id, escalated_at__isnull=True, system_run__run__due_date__lte=cutoff)
        .first()
    )
    if task is None:
        return False
    task = ManualTask.objects.select_related("system_run__run__request").get(pk=task.pk)
    system = instructions.system_resolve(datamap, task.system_run.system) if datamap else None
    request = task.system_run.run.request
    task.escalated_at = timezone.now()
    task.save(update_fields=["escalated_at"])
    action = (task.system_run.instruction or {}).get("action", "")
    email_to_staff(
        request=request,
        template="staff_instruction_unconfirmed" if action else "staff_owner_unanswered",
        recipients=staff_recipients(),
        context={
            "action": ACTION_LABELS.get(action, action),
            "kind": "manual",
            "system": _system_context(system) if system else {"name": task.system_run.system},
            "owner": {"email": task.owner_email},
            "asked_on": timezone.localdate(task.created_at),
            "days_left": (task.system_run.run.due_date - today).days,
        },
    )
    return True


def manual_tasks_remind(*, today: date | None = None) -> int:
    """Remind the owners whose answer is due (remind_on reached), and tell the team once about
    each owner still silent within ESCALATE_BEFORE_DUE_DAYS of the request's due date. Returns
    the emails queued. Each task is taken under its row lock, so two sweeps never send twice."""
    today = today or business_today()
    try:
        datamap: DataMap | None = datamap_load()
    except DataMapError:
        datamap = None  # reminders still go out; each uses the default interval
    sent = 0
    for task_id in _waiting().filter(remind_on__lte=today).values_list("pk", flat=True):
        sent += _remind(task_id, today, datamap)
    cutoff = today + timedelta(days=ESCALATE_BEFORE_DUE_DAYS)
    escalate = _waiting().filter(escalated_at__isnull=True, system_run__run__due_date__lte=cutoff)
    for task_id in escalate.values_list("pk", flat=True):
        sent += _escalate(task_id, today, datamap)
    if sent:
        log.info("manual tasks: %s reminder or escalation emails queued", sent)
    return sent

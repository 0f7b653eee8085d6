"""Signed checkpoints of every audit chain's head, kept outside the database (RULES.md §6).

The keyed chain stops anyone without the audit key from rewriting events; it cannot show that a
whole request, or the newest events of one, were deleted together with the head kept on the
request. A checkpoint can: `dsr_verify_audit` (and the daily beat task) checks every chain, then
checks that each (reference, seq, head) of the latest checkpoint is still a prefix of the chain in
the database (chains may grow, never change or shrink) — or, for a request that is gone, that the
retention purge left a valid tombstone for it — and only then writes a new checkpoint. A run that
finds a problem writes none, so it keeps failing until someone looks."""

import hmac
import json
import logging
import os
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.utils import timezone

from dsr.models import AuditEvent, AuditTombstone, DataSubjectRequest
from dsr.services.audit import (
    ChainProblem,
    UnknownAuditKey,
    audit_chain_check,
    audit_sign,
    audit_tombstone_valid,
    canonical_json,
)

log = logging.getLogger(__name__)

FORMAT = "dsr-audit-checkpoint/1"
EVENT_FIELDS = (
    "request_id",
    "seq",
    "event_type",
    "actor_type",
    "actor_label",
    "from_status",
    "to_status",
    "data",
    "created_at",
    "prev_hash",
    "hash",
    "key_id",
)


class CheckpointInvalid(ValueError):
    pass


@dataclass
class AuditVerification:
    checked: int = 0
    purged: int = 0
    problems: list[ChainProblem] = field(default_factory=list)
    checkpoint_read: Path | None = None
    checkpoint_written: Path | None = None


def checkpoint_files(directory: Path) -> list[Path]:
    """Oldest first; the names sort by the time they were written."""
    return sorted(Path(directory).glob("checkpoint-*.json"))


def checkpoint_load(path: Path) -> dict[str, tuple[int, str]]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        mac, key_id = document.pop("mac"), document["key_id"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointInvalid(f"unreadable ({exc.__class__.__name__})") from None
    if document.get("format") != FORMAT:
        raise CheckpointInvalid(f"unknown format {document.get('format')!r}")
    try:
        expected = audit_sign(canonical_json(document).encode("utf-8"), key_id=key_id)
    except UnknownAuditKey:
        raise CheckpointInvalid(f"signed with unknown audit key id {key_id!r}") from None
    if not isinstance(mac, str) or not hmac.compare_digest(expected, mac):
        raise CheckpointInvalid("signature does not match (changed, or not written with the audit key)")
    return {reference: (int(seq), str(head)) for reference, (seq, head) in document["heads"].items()}


def checkpoint_write(directory: Path, heads: dict[str, tuple[int, str]]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = timezone.now()
    key_id = settings.DSR_AUDIT_KEY_ID
    document = {
        "format": FORMAT,
        "created_at": now.isoformat(timespec="microseconds"),
        "key_id": key_id,
        "heads": {reference: [seq, head] for reference, (seq, head) in sorted(heads.items())},
    }
    document["mac"] = audit_sign(canonical_json(document).encode("utf-8"), key_id=key_id)
    path = directory / f"checkpoint-{now:%Y%m%dT%H%M%S%fZ}.json"
    suffix = 1
    while path.exists():
        path = directory / f"checkpoint-{now:%Y%m%dT%H%M%S%fZ}-{suffix}.json"
        suffix += 1
    temporary = path.with_suffix(".tmp")
    temporary.write_text(canonical_json(document) + "\n", encoding="utf-8")
    os.replace(temporary, path)  # a reader never sees half a checkpoint
    return path


def _chains():
    """(pk, reference, head seq, head hash, events) for every request, in two streamed queries."""
    requests = DataSubjectRequest.objects.order_by("pk").values_list("pk", "reference", "audit_seq", "audit_head")
    events = AuditEvent.objects.order_by("request_id", "seq").only(*EVENT_FIELDS).iterator(chunk_size=5000)
    groups = groupby(events, key=attrgetter("request_id"))
    pending = next(groups, None)
    for pk, reference, head_seq, head_hash in requests.iterator(chunk_size=2000):
        while pending is not None and pending[0] < pk:  # events of no request: the FK forbids it
            pending = next(groups, None)
        chain = []
        if pending is not None and pending[0] == pk:
            chain = list(pending[1])
            pending = next(groups, None)
        yield pk, reference, head_seq, head_hash, chain


def audit_trail_verify(*, write_checkpoint: bool = True) -> AuditVerification:
    """Check every chain, the latest checkpoint and the tombstones; write a new checkpoint when
    everything holds. One consistent snapshot, so work going on meanwhile is no false alarm."""
    result = AuditVerification()
    directory = Path(settings.DSR_AUDIT_CHECKPOINT_DIR)
    files = checkpoint_files(directory)
    previous: dict[str, tuple[int, str]] = {}
    if files:
        result.checkpoint_read = files[-1]
        try:
            previous = checkpoint_load(files[-1])
        except CheckpointInvalid as exc:
            result.problems.append(ChainProblem("", 0, f"checkpoint {files[-1].name}: {exc}"))
    name = files[-1].name if files else ""
    heads: dict[str, tuple[int, str]] = {}
    # Inside a caller's transaction (a test's) the snapshot is the caller's.
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if snapshot:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for _pk, reference, head_seq, head_hash, events in _chains():
            result.checked += 1
            result.problems.extend(
                audit_chain_check(reference=reference, events=events, head_seq=head_seq, head_hash=head_hash)
            )
            if head_seq:
                heads[reference] = (head_seq, head_hash)
            if reference in previous:
                seq, head = previous.pop(reference)
                hashes = {e.seq: e.hash for e in events}
                last = events[-1].seq if events else 0
                if last < seq:
                    result.problems.append(
                        ChainProblem(reference, last, f"chain shrank: checkpoint {name} had #{seq}, now #{last}")
                    )
                elif hashes.get(seq) != head:
                    result.problems.append(
                        ChainProblem(reference, seq, f"event #{seq} changed since checkpoint {name}")
                    )
        tombstones = {t.reference: t for t in AuditTombstone.objects.order_by("pk").iterator(chunk_size=5000)}
    valid = {reference: audit_tombstone_valid(t) for reference, t in tombstones.items()}
    for reference, t in tombstones.items():
        if not valid[reference]:
            result.problems.append(
                ChainProblem(reference, t.last_seq, "tombstone signature does not match (forged, or changed)")
            )
    # What the checkpoint had and the database no longer has: purged (with a tombstone) or deleted.
    for reference, (seq, head) in sorted(previous.items()):
        tombstone = tombstones.get(reference)
        if tombstone is None:
            result.problems.append(
                ChainProblem(reference, seq, f"request deleted: in checkpoint {name} at #{seq}, no tombstone")
            )
        elif not valid[reference]:
            result.problems.append(
                ChainProblem(reference, seq, f"request deleted: in checkpoint {name} at #{seq}, tombstone forged")
            )
        elif tombstone.last_seq < seq or (tombstone.last_seq == seq and tombstone.head_hash != head):
            result.problems.append(
                ChainProblem(
                    reference, seq, f"tombstone at #{tombstone.last_seq} does not continue checkpoint {name} at #{seq}"
                )
            )
        else:
            result.purged += 1
    if write_checkpoint and not result.problems:
        result.checkpoint_written = checkpoint_write(directory, heads)
    return result


def audit_verification_mail(result: AuditVerification) -> bool:
    """Send the new checkpoint, or the problems found, to DSR_AUDIT_CHECKPOINT_EMAILS (the DPO):
    a copy outside this system's reach. Returns whether a message went."""
    recipients = settings.DSR_AUDIT_CHECKPOINT_EMAILS
    if not recipients:
        return False
    if result.problems:
        subject = f"[{settings.DSR_BUSINESS_NAME}] Audit trail check FAILED: {len(result.problems)} problem(s)"
        body = "\n".join(f"{p.reference or '-'} #{p.seq}: {p.problem}" for p in result.problems)
    else:
        written = result.checkpoint_written.name if result.checkpoint_written else "(none written)"
        subject = f"[{settings.DSR_BUSINESS_NAME}] Audit trail checkpoint {written}"
        body = (
            f"Audit trail intact: {result.checked} request(s) checked, {result.purged} purge(s) matched their "
            "tombstones.\nKeep the attached signed checkpoint: later checks can be compared with it."
        )
    message = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    if result.checkpoint_written:
        message.attach_file(str(result.checkpoint_written), "application/json")
    try:
        message.send()
    except Exception:  # the check itself stands; the mail is a copy
        log.exception("audit checkpoint mail to %s failed", recipients)
        return False
    return True

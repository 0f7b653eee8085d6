"""The append-only, hash-chained audit trail (RULES.md §6)."""

import hashlib
import json
from dataclasses import dataclass
from datetime import timezone as dt_timezone

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from dsr.models import ActorType, AuditEvent, DataSubjectRequest

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Actor:
    type: str
    user: object | None = None
    label: str = ""

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(ActorType.SYSTEM, None, label)

    @classmethod
    def staff(cls, user) -> "Actor":
        return cls(ActorType.STAFF, user, user.get_username())

    @classmethod
    def requester(cls, email: str = "") -> "Actor":
        return cls(ActorType.REQUESTER, None, email or "requester")


def json_normalised(data: dict | None) -> dict:
    """What the JSON column will give back, so the hash is computed over what is stored."""
    return json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder))


def event_hash(
    *,
    prev_hash: str,
    reference: str,
    seq: int,
    event_type: str,
    actor_type: str,
    actor_label: str,
    from_status: str,
    to_status: str,
    data: dict,
    created_at,
) -> str:
    payload = json.dumps(
        {
            "reference": reference,
            "seq": seq,
            "event_type": event_type,
            "actor_type": actor_type,
            "actor_label": actor_label,
            "from_status": from_status,
            "to_status": to_status,
            "data": data,
            "created_at": created_at.astimezone(dt_timezone.utc).isoformat(timespec="microseconds"),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


def audit_event_record(
    *,
    request: DataSubjectRequest,
    event_type: str,
    actor: Actor,
    from_status: str = "",
    to_status: str = "",
    data: dict | None = None,
) -> AuditEvent:
    """Append one event to the request's chain. The caller holds the request's row lock (the
    instance was read under it), which orders the chain; the (request, seq) unique constraint
    refuses a fork all the same."""
    seq = request.audit_seq + 1
    prev_hash = request.audit_head or GENESIS_HASH
    data = json_normalised(data)
    created_at = timezone.now()
    event = AuditEvent(
        request=request,
        seq=seq,
        event_type=event_type,
        actor_type=actor.type,
        actor=actor.user,
        actor_label=actor.label[:150],
        from_status=from_status,
        to_status=to_status,
        data=data,
        created_at=created_at,
        prev_hash=prev_hash,
    )
    event.hash = event_hash(
        prev_hash=prev_hash,
        reference=request.reference,
        seq=seq,
        event_type=event_type,
        actor_type=actor.type,
        actor_label=event.actor_label,
        from_status=from_status,
        to_status=to_status,
        data=data,
        created_at=created_at,
    )
    event.save(force_insert=True)
    request.audit_seq, request.audit_head = seq, event.hash
    DataSubjectRequest.objects.filter(pk=request.pk).update(audit_seq=seq, audit_head=event.hash)
    return event


@dataclass(frozen=True)
class ChainProblem:
    reference: str
    seq: int
    problem: str


def audit_chain_check(*, reference: str, events, head_seq: int, head_hash: str) -> list[ChainProblem]:
    """Recompute one request's chain from its stored rows (ordered by seq) and compare its end with
    the head kept on the request."""
    problems = []
    events = list(events)
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for event in events:
        if event.seq != expected_seq:
            problems.append(ChainProblem(reference, event.seq, f"expected event #{expected_seq}, found #{event.seq}"))
            expected_seq = event.seq
        if event.prev_hash != prev_hash:
            problems.append(ChainProblem(reference, event.seq, "previous-hash link broken"))
        recomputed = event_hash(
            prev_hash=event.prev_hash,
            reference=reference,
            seq=event.seq,
            event_type=event.event_type,
            actor_type=event.actor_type,
            actor_label=event.actor_label,
            from_status=event.from_status,
            to_status=event.to_status,
            data=event.data,
            created_at=event.created_at,
        )
        if recomputed != event.hash:
            problems.append(ChainProblem(reference, event.seq, "content does not match its hash"))
        prev_hash = event.hash
        expected_seq += 1
    last_seq = events[-1].seq if events else 0
    if last_seq != head_seq or (head_seq and prev_hash != head_hash):
        problems.append(ChainProblem(reference, last_seq, f"chain ends at #{last_seq}, request records #{head_seq}"))
    return problems

"""The append-only, hash-chained audit trail (RULES.md §6).

Each event's hash is an HMAC-SHA256, under the audit key named by the event's `key_id`, of its
content and the previous event's hash. The key lives in the environment, never in the database, so
whoever can write to the database cannot recompute a chain. Events written before the chain was
keyed have an empty `key_id` and a plain SHA-256; they are checked as before, may only open a
chain, and migration 0011 sealed each such chain with a keyed event, so a chain whose last event
is unkeyed has been rewritten."""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from dsr.event_types import EventType
from dsr.models import ActorType, AuditEvent, AuditTombstone, DataSubjectRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User

GENESIS_HASH = "0" * 64
LEGACY_KEY_ID = ""  # plain SHA-256, written before the chain was keyed


class UnknownAuditKey(LookupError):
    pass


def audit_key(key_id: str) -> bytes:
    try:
        return settings.DSR_AUDIT_KEYS[key_id].encode("utf-8")
    except KeyError:
        raise UnknownAuditKey(key_id) from None


def audit_sign(payload: bytes, *, key_id: str) -> str:
    """HMAC-SHA256 of checkpoints and tombstones under the named audit key."""
    return hmac.new(audit_key(key_id), payload, hashlib.sha256).hexdigest()


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Actor:
    type: str
    user: "User | None" = None
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


@dataclass(frozen=True)
class Event:
    """One event to append to a request's chain: its kind, who caused it, and its data. Built by
    the constructors in dsr.services.events, one per kind."""

    type: EventType
    actor: Actor
    data: dict | None = None

    def __post_init__(self):
        # Only a kind the timeline, the reports and the chain know: a free string is refused.
        object.__setattr__(self, "type", EventType(self.type))


def json_normalised(data: dict | None) -> dict:
    """What the JSON column will give back, so the hash is computed over what is stored."""
    return json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder))


def event_hash(
    *,
    key_id: str,
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
    content = {
        "reference": reference,
        "seq": seq,
        "event_type": event_type,
        "actor_type": actor_type,
        "actor_label": actor_label,
        "from_status": from_status,
        "to_status": to_status,
        "data": data,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    if key_id == LEGACY_KEY_ID:
        return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()
    # The key id is signed too, so an event cannot be moved under another key.
    message = prev_hash + canonical_json({**content, "key_id": key_id})
    return hmac.new(audit_key(key_id), message.encode("utf-8"), hashlib.sha256).hexdigest()


def audit_event_record(
    *,
    request: DataSubjectRequest,
    event: Event,
    from_status: str = "",
    to_status: str = "",
) -> AuditEvent:
    """Append one event to the request's chain. The caller holds the request's row lock (the
    instance was read under it), which orders the chain; the (request, seq) unique constraint
    refuses a fork all the same."""
    seq = request.audit_seq + 1
    prev_hash = request.audit_head or GENESIS_HASH
    event_type, actor = event.type.value, event.actor  # the stored, hashed string
    data = json_normalised(event.data)
    created_at = timezone.now()
    key_id = settings.DSR_AUDIT_KEY_ID
    row = AuditEvent(
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
        key_id=key_id,
    )
    row.hash = event_hash(
        key_id=key_id,
        prev_hash=prev_hash,
        reference=request.reference,
        seq=seq,
        event_type=event_type,
        actor_type=actor.type,
        actor_label=row.actor_label,
        from_status=from_status,
        to_status=to_status,
        data=data,
        created_at=created_at,
    )
    row.save(force_insert=True)
    request.audit_seq, request.audit_head = seq, row.hash
    DataSubjectRequest.objects.filter(pk=request.pk).update(audit_seq=seq, audit_head=row.hash)
    return row


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
    keyed_seen = False
    for event in events:
        if event.seq != expected_seq:
            problems.append(ChainProblem(reference, event.seq, f"expected event #{expected_seq}, found #{event.seq}"))
            expected_seq = event.seq
        if event.prev_hash != prev_hash:
            problems.append(ChainProblem(reference, event.seq, "previous-hash link broken"))
        if event.key_id == LEGACY_KEY_ID and keyed_seen:
            problems.append(
                ChainProblem(reference, event.seq, "unkeyed hash after keyed events (rewritten without the audit key)")
            )
        keyed_seen = keyed_seen or event.key_id != LEGACY_KEY_ID
        try:
            recomputed = event_hash(
                key_id=event.key_id,
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
        except UnknownAuditKey:
            problems.append(ChainProblem(reference, event.seq, f"signed with unknown audit key id {event.key_id!r}"))
            recomputed = None
        if recomputed is not None and not hmac.compare_digest(recomputed, event.hash):
            problems.append(ChainProblem(reference, event.seq, "content does not match its hash"))
        prev_hash = event.hash
        expected_seq += 1
    last_seq = events[-1].seq if events else 0
    if events and not keyed_seen:
        problems.append(ChainProblem(reference, last_seq, "chain has no keyed event (rewritten without the audit key)"))
    if last_seq != head_seq or (head_seq and prev_hash != head_hash):
        problems.append(ChainProblem(reference, last_seq, f"chain ends at #{last_seq}, request records #{head_seq}"))
    return problems


def tombstone_mac_payload(*, reference: str, last_seq: int, head_hash: str, purged_at) -> bytes:
    return canonical_json(
        {
            "kind": "tombstone",
            "reference": reference,
            "last_seq": last_seq,
            "head_hash": head_hash,
            "purged_at": purged_at.astimezone(UTC).isoformat(timespec="microseconds"),
        }
    ).encode("utf-8")


def audit_tombstone_record(*, request: DataSubjectRequest) -> AuditTombstone:
    """Sign what the retention purge is about to delete: the chain's reference, last event and
    head. The caller holds the request's row lock and deletes the request in the same transaction."""
    purged_at = timezone.now()
    key_id = settings.DSR_AUDIT_KEY_ID
    payload = tombstone_mac_payload(
        reference=request.reference, last_seq=request.audit_seq, head_hash=request.audit_head, purged_at=purged_at
    )
    return AuditTombstone.objects.create(
        reference=request.reference,
        last_seq=request.audit_seq,
        head_hash=request.audit_head,
        purged_at=purged_at,
        key_id=key_id,
        mac=audit_sign(payload, key_id=key_id),
    )


def audit_tombstone_valid(tombstone: AuditTombstone) -> bool:
    payload = tombstone_mac_payload(
        reference=tombstone.reference,
        last_seq=tombstone.last_seq,
        head_hash=tombstone.head_hash,
        purged_at=tombstone.purged_at,
    )
    try:
        return hmac.compare_digest(audit_sign(payload, key_id=tombstone.key_id), tombstone.mac)
    except UnknownAuditKey:
        return False

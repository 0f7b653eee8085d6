"""The hash-chained audit trail: intact chains pass, any tampering is found and named."""

import pytest

from dsr.models import AuditEvent, DataSubjectRequest
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_deny, request_reopen, request_verify
from tests.factories import request_create
from tests.support.audit import audit_tamper, audit_verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def worked(officer):
    r = request_create()
    request_verify(request=r, actor=Actor.staff(officer), note="ok")
    request_deny(request=r, actor=Actor.staff(officer), reason_category="exempt", message="Legal hold")
    request_create(email="other@example.org")
    return r


def _problems(request):
    """Run the check as an operator does: the exit code, and each problem it names for `request`."""
    code, out = audit_verify()
    return code, [
        line.removeprefix(f"{request.reference} ") for line in out.splitlines() if line.startswith(request.reference)
    ]


def test_intact_chains_pass(worked):
    code, out = audit_verify()
    assert code == 0 and "Audit trail intact: 2 request(s) checked." in out
    events = list(AuditEvent.objects.filter(request=worked).order_by("seq"))
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))


def _swap(first, second, column):
    """Exchange one column between two events (seq through a free value: (request, seq) is unique)."""
    table = AuditEvent._meta.db_table
    if column == "seq":
        steps = [(first.pk, 0), (second.pk, first.seq), (first.pk, second.seq)]
    else:
        steps = [(first.pk, getattr(second, column)), (second.pk, getattr(first, column))]
    for pk, value in steps:
        audit_tamper(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])


# How the rows are changed, and every problem the check must name (the chain has events #1-#4).
TAMPERING = {
    "edit_data": ["event #4: content does not match its hash"],
    "edit_actor": ["event #4: content does not match its hash"],
    "delete_middle": ["event #3: expected event #2, found #3", "event #3: previous-hash link broken"],
    "delete_last": ["event #3: chain ends at #3, request records #4"],
    # Two events swapped in the chain's order: each hash covers its seq and the previous hash.
    "reorder": [
        "event #2: previous-hash link broken",
        "event #2: content does not match its hash",
        "event #3: previous-hash link broken",
        "event #3: content does not match its hash",
        "event #4: previous-hash link broken",
    ],
    # Two events' times swapped, so that a timeline sorted by time shows them the other way round.
    "reorder_times": ["event #2: content does not match its hash", "event #3: content does not match its hash"],
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampering_is_detected(worked, how):
    events = {e.seq: e for e in AuditEvent.objects.filter(request=worked)}
    assert sorted(events) == [1, 2, 3, 4]
    last = events[4]
    table = AuditEvent._meta.db_table
    if how == "edit_data":
        audit_tamper(
            f"UPDATE {table} SET data = %s WHERE id = %s",
            ['{"reason_category": "exempt", "message": "changed"}', last.pk],
        )
    elif how == "edit_actor":
        audit_tamper(f"UPDATE {table} SET actor_label = %s WHERE id = %s", ["someone-else", last.pk])
    elif how == "delete_middle":
        audit_tamper(f"DELETE FROM {table} WHERE request_id = %s AND seq = 2", [worked.pk])
    elif how == "delete_last":
        audit_tamper(f"DELETE FROM {table} WHERE id = %s", [last.pk])
    elif how == "reorder":
        _swap(events[2], events[3], "seq")
        assert list(AuditEvent.objects.filter(request=worked).order_by("seq").values_list("pk", flat=True)) == [
            events[1].pk,
            events[3].pk,
            events[2].pk,
            events[4].pk,
        ]
    else:
        _swap(events[2], events[3], "created_at")
    code, problems = _problems(worked)
    assert code == 1 and problems == TAMPERING[how]


def test_a_request_with_events_cannot_be_deleted(worked):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        DataSubjectRequest.objects.filter(pk=worked.pk).delete()


@pytest.mark.postgres
def test_postgres_refuses_to_reorder_events(worked):
    """The trigger refuses the reordering above before any check is needed: no event changes seq."""
    from django.db import DatabaseError, transaction

    order = list(AuditEvent.objects.filter(request=worked).order_by("seq").values_list("pk", "seq"))
    second, third = order[1][0], order[2][0]
    for pk, seq in ((second, 0), (third, 2), (second, 3)):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic():
                AuditEvent.objects.filter(pk=pk).update(seq=seq)
    assert list(AuditEvent.objects.filter(request=worked).order_by("seq").values_list("pk", "seq")) == order
    assert audit_verify()[0] == 0


@pytest.mark.postgres
def test_postgres_refuses_to_change_or_delete_an_event(worked):
    from django.db import DatabaseError, transaction

    event = AuditEvent.objects.filter(request=worked).first()
    label = event.actor_label
    for attempt in (
        lambda: AuditEvent.objects.filter(pk=event.pk).update(actor_label="x"),
        lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic():
                attempt()
    event.refresh_from_db()
    assert event.actor_label == label


# --- The keyed chain: without the audit key nobody recomputes it --------------------------------


def _plain_sha256(prev_hash, payload):
    import hashlib

    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


def _hmac_under(key):
    def sign(prev_hash, payload):
        import hashlib
        import hmac

        return hmac.new(key.encode(), (prev_hash + payload).encode("utf-8"), hashlib.sha256).hexdigest()

    return sign


def _recompute_chain(request, sign, *, key_id, change=None, only_last=False):
    """What an attacker with write access to the database does: change an event, then recompute
    every hash (and the head kept on the request) with what they have, no audit key."""
    import json
    from datetime import timezone as dt_timezone

    from dsr.services.audit import GENESIS_HASH, canonical_json

    events = list(AuditEvent.objects.filter(request=request).order_by("seq"))
    if change:
        change(events[-1])
    prev = GENESIS_HASH
    table = AuditEvent._meta.db_table
    for i, e in enumerate(events):
        if not only_last or i == len(events) - 1:
            content = {
                "reference": request.reference,
                "seq": e.seq,
                "event_type": e.event_type,
                "actor_type": e.actor_type,
                "actor_label": e.actor_label,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "data": e.data,
                "created_at": e.created_at.astimezone(dt_timezone.utc).isoformat(timespec="microseconds"),
            }
            if key_id:
                content["key_id"] = key_id
            e.prev_hash, e.hash, e.key_id = prev, sign(prev, canonical_json(content)), key_id
            audit_tamper(
                f"UPDATE {table} SET data = %s, actor_label = %s, prev_hash = %s, hash = %s, key_id = %s WHERE id = %s",
                [json.dumps(e.data), e.actor_label, e.prev_hash, e.hash, e.key_id, e.pk],
            )
        prev = e.hash
    DataSubjectRequest.objects.filter(pk=request.pk).update(audit_head=prev)


def _soften(event):
    event.data = {**event.data, "message": "We found nothing."}


def test_events_are_signed_with_the_current_audit_key(worked, settings):
    events = list(AuditEvent.objects.filter(request=worked))
    assert events and {e.key_id for e in events} == {settings.DSR_AUDIT_KEY_ID}


@pytest.mark.parametrize(
    "how",
    [
        "plain SHA-256, key id kept",
        "plain SHA-256, marked unkeyed",
        "HMAC under a guessed key",
        "HMAC under the old secret key",
    ],
)
def test_a_chain_recomputed_without_the_audit_key_is_detected(worked, settings, how):
    key_id = settings.DSR_AUDIT_KEY_ID
    sign, marked = {
        "plain SHA-256, key id kept": (_plain_sha256, key_id),
        "plain SHA-256, marked unkeyed": (_plain_sha256, ""),
        "HMAC under a guessed key": (_hmac_under("guess"), key_id),
        "HMAC under the old secret key": (_hmac_under(settings.SECRET_KEY), key_id),
    }[how]
    _recompute_chain(worked, sign, key_id=marked, change=_soften)
    code, problems = _problems(worked)
    if marked:  # every hash recomputed without the key fails its HMAC
        assert code == 1 and problems == [f"event #{seq}: content does not match its hash" for seq in (1, 2, 3, 4)]
    else:  # plain hashes are valid SHA-256, but a chain with no keyed event is a rewrite
        assert code == 1 and problems == ["event #4: chain has no keyed event (rewritten without the audit key)"]


def test_the_same_recomputation_with_the_key_passes(worked, settings):
    """The control for the test above: the rewriting itself is sound, only the key is missing."""
    _recompute_chain(
        worked,
        _hmac_under(settings.DSR_AUDIT_KEYS[settings.DSR_AUDIT_KEY_ID]),
        key_id=settings.DSR_AUDIT_KEY_ID,
        change=_soften,
    )
    code, out = audit_verify()
    assert code == 0 and "Audit trail intact" in out, out


def test_one_rewritten_event_with_a_recomputed_unkeyed_hash_is_detected(worked):
    _recompute_chain(worked, _plain_sha256, key_id="", change=_soften, only_last=True)
    assert audit_verify()[0] == 1
    from dsr.services.audit import audit_chain_check

    worked.refresh_from_db()
    problems = audit_chain_check(
        reference=worked.reference,
        events=worked.events.order_by("seq"),
        head_seq=worked.audit_seq,
        head_hash=worked.audit_head,
    )
    assert [p.problem for p in problems] == ["unkeyed hash after keyed events (rewritten without the audit key)"]


def test_unkeyed_chains_from_before_the_key_stay_verifiable_once_sealed(worked, settings):
    """Rows hashed before the key existed cannot be updated (the trigger): the migration appends
    one keyed event to each such chain; the old rows are checked as before."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("dsr.migrations.0011_audit_keys_tombstones")
    _recompute_chain(worked, _plain_sha256, key_id="")  # the rows as an older version wrote them
    assert audit_verify()[0] == 1  # an unkeyed chain not sealed is what a rewrite without the key looks like
    migration.seal_unkeyed_chains(apps, None)
    worked.refresh_from_db()
    seal = worked.events.order_by("seq").last()
    assert (seal.event_type, seal.key_id, seal.data["unkeyed_events"]) == (
        "audit_chain_keyed",
        settings.DSR_AUDIT_KEY_ID,
        4,
    )
    code, out = audit_verify()
    assert code == 0 and "Audit trail intact" in out, out
    # Now rewriting an old (unkeyed) event and recomputing the plain hashes breaks the keyed seal.
    first = AuditEvent.objects.get(request=worked, seq=1)
    audit_tamper(f"UPDATE {AuditEvent._meta.db_table} SET actor_label = %s WHERE id = %s", ["someone-else", first.pk])
    assert audit_verify()[0] == 1


def test_key_rotation_keeps_older_events_verifiable(worked, settings, officer):
    old_id, old_key = settings.DSR_AUDIT_KEY_ID, settings.DSR_AUDIT_KEYS[settings.DSR_AUDIT_KEY_ID]
    settings.DSR_AUDIT_KEY_ID = "2027"
    settings.DSR_AUDIT_KEYS = {old_id: old_key, "2027": "the new key"}
    request_reopen(request=worked, actor=Actor.staff(officer), reason="More found")
    assert list(worked.events.order_by("seq").values_list("key_id", flat=True))[-2:] == [old_id, "2027"]
    code, out = audit_verify()
    assert code == 0 and "Audit trail intact" in out, out
    settings.DSR_AUDIT_KEYS = {"2027": "the new key"}  # the retired key dropped: older events are unverifiable
    code, out = audit_verify()
    assert code == 1 and f"signed with unknown audit key id '{old_id}'" in out
    from dsr.services.audit import audit_chain_check

    problems = audit_chain_check(
        reference=worked.reference,
        events=worked.events.order_by("seq"),
        head_seq=worked.events.count(),
        head_hash=worked.events.order_by("seq").last().hash,
    )
    assert f"signed with unknown audit key id '{old_id}'" in {p.problem for p in problems}

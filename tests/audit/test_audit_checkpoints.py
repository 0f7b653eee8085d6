"""Signed checkpoints outside the database, and the tombstones the retention purge leaves: a
deletion, a truncation or a forged tombstone is found; a legitimate purge is not a problem."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dsr.models import (
    AuditEvent,
    AuditTombstone,
    ClockPause,
    DataSubjectRequest,
    OutboundEmail,
    RequestDocument,
    VerificationChallenge,
)
from dsr.services.audit import Actor
from dsr.services.audit_checkpoints import checkpoint_files
from dsr.services.retention import retention_purge
from dsr.services.staff_actions import request_reopen
from tests.factories import request_denied_create
from tests.support.audit import audit_tamper, audit_verify

pytestmark = pytest.mark.django_db


def _age(request, days=800):
    DataSubjectRequest.objects.filter(pk=request.pk).update(
        received_at=timezone.now() - timedelta(days=days + 20), closed_at=timezone.now() - timedelta(days=days)
    )


def _delete_outright(request):
    """A request removed with everything that points at it, as someone with database access can
    (on PostgreSQL by setting the purge flag themselves) — but not through the retention purge."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL dsr.retention_purge = 'on'")
    for model in (RequestDocument, VerificationChallenge, ClockPause, OutboundEmail, AuditEvent):
        model.objects.filter(request=request).delete()
    DataSubjectRequest.objects.filter(pk=request.pk).delete()


def _truncate(request):
    """Drop the newest event and move the head kept on the request back to match."""
    last = AuditEvent.objects.filter(request=request).order_by("-seq").first()
    audit_tamper(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [last.pk])
    DataSubjectRequest.objects.filter(pk=request.pk).update(audit_seq=last.seq - 1, audit_head=last.prev_hash)


@pytest.fixture
def two(officer):
    return request_denied_create(officer=officer, email="a@example.org"), request_denied_create(
        officer=officer, email="b@example.org"
    )


def test_first_run_writes_a_signed_checkpoint_and_growing_chains_pass(two, settings, officer):
    code, out = audit_verify()
    assert code == 0 and "Checkpoint written" in out
    [first] = checkpoint_files(settings.DSR_AUDIT_CHECKPOINT_DIR)
    document = json.loads(first.read_text())
    a, b = two
    assert document["heads"][a.reference] == [a.events.count(), a.events.order_by("seq").last().hash]
    assert document["key_id"] == settings.DSR_AUDIT_KEY_ID and len(document["mac"]) == 64
    request_reopen(request=a, actor=Actor.staff(officer), reason="More found")  # chains may grow
    code, out = audit_verify()
    assert code == 0 and f"Compared with checkpoint {first}" in out
    assert len(checkpoint_files(settings.DSR_AUDIT_CHECKPOINT_DIR)) == 2


def test_truncation_the_chain_alone_cannot_show_is_caught_by_the_checkpoint(two, settings):
    a, _ = two
    assert audit_verify()[0] == 0
    _truncate(a)
    from dsr.services.audit import audit_chain_check

    # The chain alone is satisfied: its end and the head on the request moved back together.

    a.refresh_from_db()
    assert (
        audit_chain_check(
            reference=a.reference, events=a.events.order_by("seq"), head_seq=a.audit_seq, head_hash=a.audit_head
        )
        == []
    )
    code, out = audit_verify()
    assert code == 1
    assert f"{a.reference} event #{a.audit_seq}: chain shrank: checkpoint" in out
    assert len(checkpoint_files(settings.DSR_AUDIT_CHECKPOINT_DIR)) == 1  # a failed run writes none


def test_a_deleted_request_is_caught_by_the_checkpoint(two):
    a, b = two
    assert audit_verify()[0] == 0
    _delete_outright(a)
    code, out = audit_verify()
    assert code == 1
    assert f"{a.reference} event #{a.audit_seq}: request deleted: in checkpoint" in out and "no tombstone" in out
    assert b.reference not in out


def test_a_changed_checkpointed_event_is_named(two):
    a, _ = two
    assert audit_verify()[0] == 0
    first = AuditEvent.objects.get(request=a, seq=a.audit_seq)
    audit_tamper(f"UPDATE {AuditEvent._meta.db_table} SET hash = %s WHERE id = %s", ["f" * 64, first.pk])
    code, out = audit_verify()
    assert code == 1 and f"event #{a.audit_seq} changed since checkpoint" in out


def test_a_retention_purge_with_its_tombstone_passes(two, django_capture_on_commit_callbacks):
    a, b = two
    assert audit_verify()[0] == 0
    _age(a)
    with django_capture_on_commit_callbacks(execute=True):
        assert retention_purge().requests_purged == 1
    tombstone = AuditTombstone.objects.get()
    assert (tombstone.reference, tombstone.last_seq, tombstone.head_hash) == (a.reference, a.audit_seq, a.audit_head)
    code, out = audit_verify()
    assert code == 0, out
    assert "1 purged request(s) matched their tombstones" in out
    assert audit_verify()[0] == 0  # the next checkpoint no longer lists it, and that passes too


@pytest.mark.parametrize("forgery", ["mac from a guessed key", "plain SHA-256", "copied from another purge"])
def test_a_deletion_dressed_up_with_a_forged_tombstone_fails(two, officer, forgery, django_capture_on_commit_callbacks):
    import hashlib
    import hmac

    from dsr.services.audit import tombstone_mac_payload

    a, b = two
    assert audit_verify()[0] == 0
    _delete_outright(a)
    purged_at = timezone.now()
    payload = tombstone_mac_payload(
        reference=a.reference, last_seq=a.audit_seq, head_hash=a.audit_head, purged_at=purged_at
    )
    if forgery == "copied from another purge":
        old = request_denied_create(officer=officer, email="old@example.org")
        _age(old)
        with django_capture_on_commit_callbacks(execute=True):
            retention_purge()
        real = AuditTombstone.objects.get(reference=old.reference)
        key_id, mac = real.key_id, real.mac
    elif forgery == "plain SHA-256":
        key_id, mac = "test", hashlib.sha256(payload).hexdigest()
    else:
        key_id, mac = "test", hmac.new(b"guess", payload, hashlib.sha256).hexdigest()
    AuditTombstone.objects.create(
        reference=a.reference, last_seq=a.audit_seq, head_hash=a.audit_head, purged_at=purged_at, key_id=key_id, mac=mac
    )
    code, out = audit_verify()
    assert code == 1
    assert f"{a.reference} event #{a.audit_seq}: tombstone signature does not match" in out
    assert "tombstone forged" in out


def test_a_purge_after_a_truncation_leaves_a_tombstone_that_does_not_continue_the_checkpoint(
    two, django_capture_on_commit_callbacks
):
    a, _ = two
    assert audit_verify()[0] == 0
    _truncate(a)
    _age(a)
    with django_capture_on_commit_callbacks(execute=True):
        assert retention_purge().requests_purged == 1
    code, out = audit_verify()
    assert code == 1 and "does not continue checkpoint" in out


def test_the_purge_leaves_a_broken_chain_for_investigation(two, django_capture_on_commit_callbacks):
    a, _ = two
    audit_tamper(
        f"UPDATE {AuditEvent._meta.db_table} SET actor_label = %s WHERE request_id = %s AND seq = 1", ["x", a.pk]
    )
    _age(a)
    with django_capture_on_commit_callbacks(execute=True):
        assert retention_purge().requests_purged == 0
    assert DataSubjectRequest.objects.filter(pk=a.pk).exists() and not AuditTombstone.objects.exists()


@pytest.mark.parametrize("edit", ["heads changed", "signature removed", "not JSON"])
def test_a_changed_checkpoint_file_fails(two, settings, edit):
    a, _ = two
    assert audit_verify()[0] == 0
    [path] = checkpoint_files(settings.DSR_AUDIT_CHECKPOINT_DIR)
    document = json.loads(path.read_text())
    if edit == "heads changed":
        document["heads"][a.reference] = [1, document["heads"][a.reference][1]]
        path.write_text(json.dumps(document))
    elif edit == "signature removed":
        del document["mac"]
        path.write_text(json.dumps(document))
    else:
        path.write_text("{")
    code, out = audit_verify()
    assert code == 1 and f"checkpoint {path.name}:" in out


def test_no_checkpoint_option_writes_nothing(two, settings):
    assert audit_verify("--no-checkpoint")[0] == 0
    assert checkpoint_files(settings.DSR_AUDIT_CHECKPOINT_DIR) == []


def test_checkpoint_and_failures_are_mailed_to_the_dpo(two, settings, mailoutbox):
    settings.DSR_AUDIT_CHECKPOINT_EMAILS = ["dpo@company.example"]
    assert audit_verify()[0] == 0
    [sent] = mailoutbox
    assert sent.to == ["dpo@company.example"] and "checkpoint" in sent.subject
    [(name, content, mimetype)] = sent.attachments
    [path] = checkpoint_files(settings.DSR_AUDIT_CHECKPOINT_DIR)
    assert name == path.name and json.loads(content) == json.loads(path.read_text())
    _delete_outright(two[0])
    assert audit_verify()[0] == 1
    assert (
        "FAILED" in mailoutbox[1].subject and two[0].reference in mailoutbox[1].body and not mailoutbox[1].attachments
    )


def test_beat_writes_a_checkpoint_daily(two, settings):
    from dsr.tasks import audit_checkpoint_run

    entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert entry["task"] == "dsr.tasks.audit_checkpoint_run" and entry["schedule"] == timedelta(hours=24)
    result = audit_checkpoint_run.delay().get()
    assert result["problems"] == 0 and result["checked"] == 2
    assert [str(p) for p in checkpoint_files(settings.DSR_AUDIT_CHECKPOINT_DIR)] == [result["checkpoint"]]

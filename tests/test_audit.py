"""The hash-chained audit trail: intact chains pass, any tampering is found."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dsr.models import AuditEvent, DataSubjectRequest
from dsr.services import requests as services
from dsr.services.audit import Actor
from tests.factories import request_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def worked(officer):
    r = request_create()
    services.request_verify(request=r, actor=Actor.staff(officer), note="ok")
    services.request_deny(request=r, actor=Actor.staff(officer), reason_category="exempt", message="Legal hold")
    request_create(email="other@example.org")
    return r


def _verify():
    out, err = StringIO(), StringIO()
    call_command("dsr_verify_audit", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_intact_chains_pass(worked):
    out, _ = _verify()
    assert "Audit trail intact: 2 request(s) checked." in out
    events = list(AuditEvent.objects.filter(request=worked).order_by("seq"))
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))


def _tamper(sql, params):
    """Change rows around the app, as someone with direct database access could; on PostgreSQL that
    first means disabling the append-only trigger."""
    from django.db import connection

    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute("ALTER TABLE dsr_auditevent DISABLE TRIGGER dsr_auditevent_append_only")
        cur.execute(sql, params)
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE dsr_auditevent ENABLE TRIGGER dsr_auditevent_append_only")


@pytest.mark.parametrize(
    "how",
    ["edit_data", "edit_actor", "delete_middle", "delete_last"],
)
def test_tampering_is_detected(worked, how):
    last = AuditEvent.objects.filter(request=worked).order_by("-seq").first()
    table = AuditEvent._meta.db_table
    if how == "edit_data":
        _tamper(f"UPDATE {table} SET data = %s WHERE id = %s", ['{"reason_category": "exempt", "message": "changed"}', last.pk])
    elif how == "edit_actor":
        _tamper(f"UPDATE {table} SET actor_label = %s WHERE id = %s", ["someone-else", last.pk])
    elif how == "delete_middle":
        _tamper(f"DELETE FROM {table} WHERE request_id = %s AND seq = 2", [worked.pk])
    else:
        _tamper(f"DELETE FROM {table} WHERE id = %s", [last.pk])
    with pytest.raises(CommandError, match="problem"):
        _verify()


def test_a_request_with_events_cannot_be_deleted(worked):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        DataSubjectRequest.objects.filter(pk=worked.pk).delete()


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

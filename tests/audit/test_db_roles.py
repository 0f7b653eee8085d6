"""Real PostgreSQL with two roles: the migration role owns the tables, the app role (which the
product connects as) cannot drop or disable the append-only trigger nor update an event, and the
product — intake, work, the retention purge, the audit check — still works under it."""

import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from dsr.models import AuditEvent, AuditTombstone, DataSubjectRequest
from dsr.services.audit import Actor
from dsr.services.retention import retention_purge
from dsr.services.staff_actions import request_deny, request_verify
from tests.factories import request_create
from tests.support.audit import audit_verify

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
APP_ROLE = os.environ.get("DSR_TEST_DB_APP_ROLE", "dsr_app")


def _as_app_role():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s AND pg_has_role(current_user, oid, 'MEMBER')", [APP_ROLE]
        )
        if cursor.fetchone() is None:
            pytest.fail(f"role {APP_ROLE} missing or not grantable to the test user (.ci/run creates it)")
        call_command("dsr_db_grant", APP_ROLE, stdout=StringIO())
        cursor.execute(f"SET LOCAL ROLE {connection.ops.quote_name(APP_ROLE)}")  # until the test's rollback
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == APP_ROLE


def _refused(sql, match):
    with pytest.raises(DatabaseError, match=match):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)


def test_the_app_role_cannot_touch_the_trigger_or_rewrite_events_and_the_purge_still_works(
    officer, django_capture_on_commit_callbacks
):
    _as_app_role()
    # The product works under the app role: intake, staff actions, the audit check.
    old = request_create(email="old@example.org")
    request_deny(request=old, actor=Actor.staff(officer), reason_category="unverifiable", message="No match.")
    kept = request_create(email="kept@example.org")
    request_verify(request=kept, actor=Actor.staff(officer), note="ok")
    event = AuditEvent.objects.filter(request=kept).first()
    events, table = AuditEvent._meta.db_table, AuditTombstone._meta.db_table

    _refused(f"UPDATE {events} SET actor_label = 'x' WHERE id = {event.pk}", "permission denied")
    _refused(f"ALTER TABLE {events} DISABLE TRIGGER dsr_auditevent_append_only", "must be owner")
    _refused(f"ALTER TABLE {events} DISABLE TRIGGER ALL", "must be owner")
    _refused(f"DROP TRIGGER dsr_auditevent_append_only ON {events}", "must be owner")
    _refused("DROP FUNCTION dsr_auditevent_append_only() CASCADE", "must be owner")
    _refused(
        "CREATE OR REPLACE FUNCTION dsr_auditevent_append_only() RETURNS trigger AS $$ BEGIN RETURN OLD; END; $$ LANGUAGE plpgsql",
        "must be owner|permission denied",
    )
    _refused(f"TRUNCATE {events}", "permission denied")
    _refused(
        f"DELETE FROM {events} WHERE id = {event.pk}", "append-only"
    )  # only the purge's flag lets a delete through
    _refused("SET session_replication_role = replica", "permission denied")  # which would skip every trigger
    event.refresh_from_db()
    assert event.actor_label != "x"

    code, out = audit_verify()
    assert code == 0 and "Audit trail intact" in out, out
    DataSubjectRequest.objects.filter(pk=old.pk).update(
        received_at=timezone.now() - timedelta(days=830), closed_at=timezone.now() - timedelta(days=800)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert retention_purge().requests_purged == 1
    assert not AuditEvent.objects.filter(request_id=old.pk).exists()
    tombstone = AuditTombstone.objects.get(reference=old.reference)
    _refused(f"UPDATE {table} SET last_seq = 99 WHERE id = {tombstone.pk}", "permission denied")
    _refused(f"DELETE FROM {table} WHERE id = {tombstone.pk}", "permission denied")
    code, out = audit_verify()
    assert code == 0 and "1 purged request(s) matched their tombstones" in out, out


def test_grant_refuses_a_missing_role_or_the_owner():
    with pytest.raises(CommandError, match="does not exist"):
        call_command("dsr_db_grant", "no_such_role_here", stdout=StringIO())
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        owner = cursor.fetchone()[0]
    with pytest.raises(CommandError, match="owner"):
        call_command("dsr_db_grant", owner, stdout=StringIO())

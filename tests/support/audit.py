"""Changing the audit trail behind the product's back, and checking it the way operators do."""

from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection


def audit_tamper(sql, params):
    """Change rows around the app, as someone with direct database access could; on PostgreSQL that
    first means disabling the append-only trigger."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute("ALTER TABLE dsr_auditevent DISABLE TRIGGER dsr_auditevent_append_only")
        cur.execute(sql, params)
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE dsr_auditevent ENABLE TRIGGER dsr_auditevent_append_only")


def audit_verify(*args) -> tuple[int, str]:
    """`manage.py dsr_verify_audit ARGS`: its exit code and everything it wrote."""
    out, err = StringIO(), StringIO()
    try:
        call_command("dsr_verify_audit", *args, stdout=out, stderr=err)
    except CommandError as failed:
        return failed.returncode, out.getvalue() + err.getvalue() + str(failed)
    return 0, out.getvalue() + err.getvalue()

"""On PostgreSQL the database itself refuses to change or delete an audit event: the app never
does, and a change made around it (by a superuser disabling the trigger) still breaks the hash
chain that `dsr_verify_audit` checks."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION dsr_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'dsr_auditevent is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER dsr_auditevent_append_only
    BEFORE UPDATE OR DELETE ON dsr_auditevent
    FOR EACH ROW EXECUTE FUNCTION dsr_auditevent_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS dsr_auditevent_append_only ON dsr_auditevent;
DROP FUNCTION IF EXISTS dsr_auditevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("dsr", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]

"""The append-only trigger lets one thing through: the retention purge (§7101: records are kept
at least 24 months, then may go), which says so with `SET LOCAL dsr.retention_purge = 'on'` in
its own transaction. Updates stay refused."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION dsr_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('dsr.retention_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'dsr_auditevent is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
"""
PREVIOUS = """
CREATE OR REPLACE FUNCTION dsr_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'dsr_auditevent is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS, params=None)


class Migration(migrations.Migration):
    dependencies = [("dsr", "0006_closed_at_index")]
    operations = [migrations.RunPython(forwards, backwards)]

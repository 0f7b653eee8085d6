"""The audit chain becomes keyed (HMAC-SHA256 under DSR_AUDIT_KEY, see dsr.services.audit).

Events written before keep their plain SHA-256 (the append-only trigger forbids rewriting them)
and an empty key id. So that such a chain cannot be rewritten and recomputed without the key, each
chain that exists now gets one keyed event, `audit_chain_keyed`, appended to it: from here on every
chain ends with a keyed event, and an unkeyed event after a keyed one is a rewrite.

Tombstones, left by the retention purge, are append-only on PostgreSQL like the events."""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

TOMBSTONE_TRIGGER = """
CREATE OR REPLACE FUNCTION dsr_audittombstone_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'dsr_audittombstone is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER dsr_audittombstone_append_only
    BEFORE UPDATE OR DELETE ON dsr_audittombstone
    FOR EACH ROW EXECUTE FUNCTION dsr_audittombstone_append_only();
"""
TOMBSTONE_TRIGGER_DROP = """
DROP TRIGGER IF EXISTS dsr_audittombstone_append_only ON dsr_audittombstone;
DROP FUNCTION IF EXISTS dsr_audittombstone_append_only();
"""


def tombstone_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TOMBSTONE_TRIGGER, params=None)


def tombstone_trigger_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TOMBSTONE_TRIGGER_DROP, params=None)


def seal_unkeyed_chains(apps, schema_editor):
    # Here, not at the top: a migration module is loaded on every migrate, and only this step needs
    # the live hash function (the seal must be exactly what audit_chain_check recomputes).
    from dsr.services.audit import event_hash

    Request = apps.get_model("dsr", "DataSubjectRequest")
    AuditEvent = apps.get_model("dsr", "AuditEvent")
    key_id = settings.DSR_AUDIT_KEY_ID
    for request in Request.objects.filter(audit_seq__gt=0).order_by("pk").iterator(chunk_size=500):
        seq, now = request.audit_seq + 1, timezone.now()
        fields = dict(
            event_type="audit_chain_keyed", actor_type="system", actor_label="migration",
            from_status="", to_status="", data={"algorithm": "hmac-sha256", "key_id": key_id, "unkeyed_events": request.audit_seq},
        )
        digest = event_hash(key_id=key_id, prev_hash=request.audit_head, reference=request.reference, seq=seq, created_at=now, **fields)
        AuditEvent.objects.create(request=request, seq=seq, created_at=now, prev_hash=request.audit_head, hash=digest, key_id=key_id, **fields)
        Request.objects.filter(pk=request.pk).update(audit_seq=seq, audit_head=digest)


class Migration(migrations.Migration):

    dependencies = [
        ("dsr", "0010_email_upper_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditTombstone",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("reference", models.CharField(max_length=20, unique=True)),
                ("last_seq", models.PositiveIntegerField()),
                ("head_hash", models.CharField(blank=True, max_length=64)),
                ("purged_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=32)),
                ("mac", models.CharField(max_length=64)),
            ],
        ),
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.RunPython(tombstone_trigger, tombstone_trigger_drop),
        migrations.RunPython(seal_unkeyed_chains, migrations.RunPython.noop),
    ]

"""PostgreSQL: one sequence for the reference numbers (issue 12), so that intake takes no lock held
to commit. It starts after every number already given (the counter rows and the references), so a
new reference never repeats an old one. SQLite keeps the per-year counter row."""

from django.db import migrations


def sequence_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    counter = apps.get_model("dsr", "ReferenceCounter")
    request = apps.get_model("dsr", "DataSubjectRequest")
    given = max(counter.objects.values_list("last", flat=True), default=0)
    numbers = (int(r.rsplit("-", 1)[1]) for r in request.objects.values_list("reference", flat=True).iterator())
    start = max(given, max(numbers, default=0)) + 1
    schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS dsr_reference_seq START WITH {int(start)}")


def sequence_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS dsr_reference_seq")


class Migration(migrations.Migration):
    dependencies = [("dsr", "0015_suppression")]

    operations = [migrations.RunPython(sequence_create, sequence_drop)]

"""The erasure's cool-off (when an approved erasure runs) and an http instruction's re-send and
escalation (issue 11). After the instruction channel's 0004 and, in line, main's 0005."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fulfilment", "0005_corrections"),
    ]

    operations = [
        migrations.AddField(
            model_name="fulfilmentrun",
            name="erase_after",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="systemrun",
            name="escalated_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="systemrun",
            name="resent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

"""The erasure's cool-off (when an approved erasure runs) and an http instruction's re-send and
escalation (issue 11). Depends on the instruction channel's migration once main is merged."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fulfilment", "0004_instructions"),
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

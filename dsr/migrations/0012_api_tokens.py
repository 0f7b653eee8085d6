"""Staff API tokens as digests with an expiry (django-rest-knox). The plain keys of
rest_framework.authtoken, if that table exists, are carried over hashed — so integrations keep
working until the new expiry — and the table with the plain keys is dropped."""

from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

OLD_TABLE = "authtoken_token"
CARRIED_OVER_NAME = "API token from before hashing"


def authtoken_keys_hash(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("dsr", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id FROM {OLD_TABLE}")
        rows = cursor.fetchall()
        expiry = timezone.now() + timedelta(days=settings.DSR_API_TOKEN_DAYS)
        ApiToken.objects.using(connection.alias).bulk_create([
            ApiToken(digest=hash_token(key), token_key=key[:CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id,
                     expiry=expiry, name=CARRIED_OVER_NAME)
            for key, user_id in rows
        ])
        cursor.execute(f"DROP TABLE {OLD_TABLE}")
    # rest_framework.authtoken is no longer installed: forget its migrations along with its table.
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('dsr', '0011_audit_keys_tombstones'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('digest', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('token_key', models.CharField(db_index=True, max_length=25)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('expiry', models.DateTimeField()),
                ('name', models.CharField(max_length=64)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='auth_token_set', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['-created'],
            },
        ),
        migrations.RunPython(authtoken_keys_hash, migrations.RunPython.noop),
    ]

"""PostgreSQL: give the app's database role only the table privileges it needs.

Two roles: the migration role owns the tables, the trigger and its function (it runs `migrate`
and then this command); the app role, which the web server, worker and beat connect as, owns
nothing, so it cannot alter, disable or drop the append-only trigger, and gets no UPDATE on audit
events nor UPDATE or DELETE on tombstones. It may delete events only inside the retention purge's
transaction, which the trigger checks. Run it after every `migrate` (new tables need grants)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from dsr.models import AuditEvent, AuditTombstone


class Command(BaseCommand):
    help = "Grant the app's PostgreSQL role (not the owner of the tables) the privileges it needs, and no more."

    def add_arguments(self, parser):
        parser.add_argument("role", help="the app's database role, e.g. dsr_app")

    def handle(self, *args, role, **options):
        if connection.vendor != "postgresql":
            raise CommandError("dsr_db_grant is for PostgreSQL; SQLite has no roles.")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            found = cursor.fetchone()
            if found is None:
                raise CommandError(
                    f"Role {role!r} does not exist: create it first (CREATE ROLE {role} LOGIN PASSWORD '…')."
                )
            if found[0]:
                raise CommandError(f"Role {role!r} is a superuser: it would bypass every restriction.")
            cursor.execute("SELECT current_user, current_schema()")
            owner, schema = cursor.fetchone()
            if owner == role:
                raise CommandError(f"Role {role!r} is the one running migrations (the owner): use a separate app role.")
            q = connection.ops.quote_name
            role_q, schema_q = q(role), q(schema)
            statements = [
                f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema_q} FROM {role_q}",
                f"GRANT USAGE ON SCHEMA {schema_q} TO {role_q}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema_q} TO {role_q}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_q} TO {role_q}",
                # Append-only (RULES.md §6): events are never updated; deleted only by the purge.
                f"REVOKE UPDATE ON {q(AuditEvent._meta.db_table)} FROM {role_q}",
                f"REVOKE UPDATE, DELETE ON {q(AuditTombstone._meta.db_table)} FROM {role_q}",
                f"REVOKE INSERT, UPDATE, DELETE ON {q('django_migrations')} FROM {role_q}",
            ]
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(f"Granted {role} the app's privileges on schema {schema} (owner: {owner}).")

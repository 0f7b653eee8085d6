import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from dsr.roles import ROLES, roles_sync
from dsr.services.tokens import COMMAND_TOKEN_NAME, api_token_create


class Command(BaseCommand):
    help = (
        "Create (or update) a staff user — a privacy officer by default — and print a new API token as the "
        f"last line (it replaces the token this command gave the user before, named '{COMMAND_TOKEN_NAME}')."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", help="Set this password (default: a random one, printed).")
        parser.add_argument("--role", choices=sorted(ROLES), default="officer")

    @transaction.atomic
    def handle(self, *args, username, email, password=None, role="officer", **options):
        try:
            validate_email(email)
        except Exception:
            raise CommandError(f"'{email}' is not a valid email address.") from None
        if not username.strip():
            raise CommandError("The username cannot be blank.")
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username, defaults={"email": email, "is_staff": True})
        if not created:
            user.email = email
            user.is_staff = True
            user.save(update_fields=["email", "is_staff"])
        generated = None
        if password or created:
            generated = None if password else secrets.token_urlsafe(12)
            user.set_password(password or generated)
            user.save(update_fields=["password"])
        groups = roles_sync()
        user.groups.add(groups[ROLES[role]])
        # Keys are stored as digests only, so the one handed out before cannot be shown again: a new
        # one replaces it.
        token, key = api_token_create(user=user, name=COMMAND_TOKEN_NAME, replace=True)
        self.stdout.write(f"{'Created' if created else 'Updated'} {role} '{username}' <{email}>.")
        if generated:
            self.stdout.write(f"Password: {generated}")
        self.stdout.write(
            f"API token (id {token.token_key}, expires {token.expiry:%Y-%m-%d}) on the next line; it is shown only now."
        )
        self.stdout.write(key)

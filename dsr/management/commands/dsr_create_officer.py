import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from rest_framework.authtoken.models import Token

OFFICER_GROUP = "Privacy officer"


def officer_group() -> Group:
    group, _ = Group.objects.get_or_create(name=OFFICER_GROUP)
    group.permissions.add(Permission.objects.get(codename="work_requests", content_type__app_label="dsr"))
    return group


class Command(BaseCommand):
    help = "Create (or update) a privacy officer and print its API token as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", help="Set this password (default: a random one, printed).")

    @transaction.atomic
    def handle(self, *args, username, email, password=None, **options):
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
        user.groups.add(officer_group())
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"{'Created' if created else 'Updated'} privacy officer '{username}' <{email}>.")
        if generated:
            self.stdout.write(f"Password: {generated}")
        self.stdout.write(token.key)

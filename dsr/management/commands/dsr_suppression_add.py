"""Put addresses on the suppression list by hand (source `staff`): an objection or a consent
withdrawal the officer read as covering marketing, or a list carried over from an old system."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from dsr.models import SuppressionScope, SuppressionSource
from dsr.services.suppression import suppression_add
from dsr.validators import single_line_problem


class Command(BaseCommand):
    help = "Add addresses to the suppression list for one scope (stored as keyed hashes, never the addresses)."

    def add_arguments(self, parser):
        parser.add_argument("emails", nargs="+", metavar="EMAIL")
        parser.add_argument("--scope", required=True, choices=SuppressionScope.values)

    @transaction.atomic
    def handle(self, *args, emails, scope, **options):
        # All or none: one bad address in the list adds none of them.
        for number, email in enumerate(emails, start=1):
            if single_line_problem(email):
                raise CommandError(f"Address {number} is not on one line.")
            if "@" not in email:
                raise CommandError(f"Address {number} has no '@': it is not an email address.")
        added = sum(
            suppression_add(email=email, scope=scope, source=SuppressionSource.STAFF) is not None for email in emails
        )
        self.stdout.write(f"{added} added to the suppression list for {scope}; {len(emails) - added} already there.")

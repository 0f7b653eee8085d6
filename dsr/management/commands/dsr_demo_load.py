import io
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from dsr.models import DataSubjectRequest, DemoCustomer, Organisation
from dsr.services.audit import Actor
from dsr.services.intake import IntakeDetails, request_submit
from dsr.services.staff_actions import request_approve, request_complete, request_deny, request_verify
from dsr.services.tokens import COMMAND_TOKEN_NAME, api_token_create

DEMO_USERNAME = "officer"
DEMO_PASSWORD = "demo-officer-pass"
DEMO_DOMAIN = "demo.example"


class Command(BaseCommand):
    help = "Load demo data (a privacy officer and a few requests in different states). Safe to run again."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        if not User.objects.filter(username=DEMO_USERNAME).exists():
            call_command(
                "dsr_create_officer",
                DEMO_USERNAME,
                email=f"officer@{DEMO_DOMAIN}",
                password=DEMO_PASSWORD,
                stdout=io.StringIO(),
            )
        user = User.objects.get(username=DEMO_USERNAME)
        # Keys are kept only as digests: each run hands out a fresh demo token, replacing the last.
        _, key = api_token_create(user=user, name=COMMAND_TOKEN_NAME, replace=True)
        if not DataSubjectRequest.objects.filter(email__endswith=f"@{DEMO_DOMAIN}").exists():
            self._requests(Actor.staff(user))
            self.stdout.write("Loaded demo requests.")
        else:
            self.stdout.write("Demo requests already loaded.")
        self.stdout.write(f"Demo privacy officer: username '{DEMO_USERNAME}', password '{DEMO_PASSWORD}'")
        self.stdout.write(f"Demo API token: {key}")

    def _requests(self, actor):
        now = timezone.now()

        # Run mode's stand-in for the company's customer records, matched during verification.
        for name, phone, postal_code, number in [
            ("Ada Lovelace", "+1 415 555 0101", "94103", "C-1001"),
            ("Sven Svensson", "+46 70 123 45 67", "114 55", "C-1002"),
            ("Anke de Vries", "+31 6 1234 5678", "1011 AB", "C-1003"),
            ("Katherine Johnson", "+1 757 555 0104", "23666", "C-1004"),
        ]:
            DemoCustomer.objects.get_or_create(
                email=f"{name.lower().replace(' ', '.')}@{DEMO_DOMAIN}",
                defaults={"full_name": name, "phone": phone, "postal_code": postal_code, "customer_number": number},
            )
        Organisation.objects.get_or_create(
            email_domain="acme.example",
            defaults={"name": "Acme Corporation", "admin_contact_email": "it-admin@acme.example"},
        )

        def submit(days_ago, request_type, regime, name, **kw):
            local = name.lower().replace(" ", ".")
            return request_submit(
                request_type=request_type,
                regime=regime,
                email=f"{local}@{DEMO_DOMAIN}",
                full_name=name,
                channel=kw.pop("channel", "web"),
                received_at=now - timedelta(days=days_ago),
                actor=actor,
                **kw,
            )

        submit(1, "access", "ccpa", "Ada Lovelace")
        submit(3, "opt_out_sale", "ccpa", "Grace Hopper")
        r = submit(10, "erasure", "gdpr", "Sven Svensson", language="sv", channel="email")
        request_verify(request=r, actor=actor, note="Matched email, phone number and customer number.")
        r = submit(40, "access_specific", "ccpa", "Katherine Johnson")
        r = request_verify(request=r, actor=actor, note="Matched three data points; declaration on file.")
        request_approve(request=r, actor=actor)
        r = submit(
            20,
            "rectification",
            "gdpr",
            "Anke de Vries",
            language="nl",
            intake=IntakeDetails(
                corrections=({"field": "postal_address", "wrong": "Damrak 1", "correct": "Damrak 10"},)
            ),
        )
        r = request_verify(request=r, actor=actor, note="Matched email and postcode.")
        request_complete(request=r, actor=actor, message="We corrected your postal address in our customer records.")
        r = submit(50, "erasure", "ccpa", "John Doe", channel="phone")
        request_deny(
            request=r,
            actor=actor,
            reason_category="unverifiable",
            message="We could not confirm your identity with the information we hold.",
        )

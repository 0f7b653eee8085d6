"""Test data built through the real services, as the product builds it."""

import io
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from dsr.services.audit import Actor
from dsr.services.intake import IntakeDetails, request_submit


def officer_create(*, username: str, email: str, role: str = "officer"):
    call_command("dsr_create_officer", username, email=email, password="correct horse battery", role=role, stdout=io.StringIO())
    return get_user_model().objects.get(username=username)


def staff_token_key(user, *, name: str = "tests") -> str:
    """A fresh API token for `user` (made by the service the command and dashboard use)."""
    from dsr.services.tokens import api_token_create

    return api_token_create(user=user, name=name)[1]


def request_create(
    *,
    request_type: str = "access",
    regime: str = "ccpa",
    email: str = "person@example.org",
    full_name: str = "Pat Person",
    language: str = "en",
    received_at: datetime | None = None,
    channel: str = "web",
    actor: Actor | None = None,
    details: str = "",
    intake: IntakeDetails | None = None,
):
    if request_type == "rectification" and intake is None and not details:
        intake = IntakeDetails(corrections=({"field": "postal_code", "wrong": "94103", "correct": "94110"},))
    return request_submit(
        request_type=request_type,
        regime=regime,
        email=email,
        full_name=full_name,
        language=language,
        received_at=received_at or timezone.now(),
        channel=channel,
        actor=actor,
        details=details,
        intake=intake,
    )

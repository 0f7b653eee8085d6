"""Issuing an email-ownership challenge: a link and a six-digit code, stored only as keyed
hashes, expiring after DSR_VERIFY_LINK_HOURS. Issuing one changes nothing about the request's
state, so intake and verification both use it without depending on each other."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from dsr.models import DataSubjectRequest, VerificationChallenge

CODE_DIGITS = 6


def challenge_digest(kind: str, value: str) -> str:
    # Keyed, so a leaked table cannot be brute-forced offline for the six-digit codes.
    return hmac.new(settings.SECRET_KEY.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def verify_url(token: str) -> str:
    return f"{settings.SITE_URL}/v/{token}/"


@dataclass(frozen=True)
class IssuedChallenge:
    challenge: VerificationChallenge
    token: str
    code: str

    def email_context(self) -> dict:
        return {
            "verify_url": verify_url(self.token),
            "verify_code": self.code,
            "verify_hours": settings.DSR_VERIFY_LINK_HOURS,
        }


def challenge_create(*, request: DataSubjectRequest) -> IssuedChallenge:
    """A new link and code; any earlier one stops working. The caller holds the request's lock."""
    now = timezone.now()
    VerificationChallenge.objects.filter(request=request, used_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=now
    )
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    challenge = VerificationChallenge.objects.create(
        request=request,
        token_hash=challenge_digest("token", token),
        code_hash=challenge_digest(f"code:{request.pk}", code),
        created_at=now,
        expires_at=now + timedelta(hours=settings.DSR_VERIFY_LINK_HOURS),
    )
    return IssuedChallenge(challenge, token, code)

"""Identity verification (RULES.md §3): email ownership by link or code (issued by
dsr.services.challenges), then a risk-scaled match
against data the business already holds. No account, no fee, nothing new collected: the values a
requester types are compared and forgotten; only which points matched is recorded."""

import hmac
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from dsr import identity
from dsr.errors import InvalidInput, TransitionNotAllowed
from dsr.event_types import EventType
from dsr.models import DataSubjectRequest, Status, VerificationChallenge
from dsr.services.audit import Actor, audit_event_record
from dsr.services.challenges import challenge_create, challenge_digest
from dsr.services.delivery import request_flag
from dsr.services.emails import email_to_requester, email_to_staff, staff_recipients
from dsr.services.events import (
    SWEEP,
    event_email_verified,
    event_identity_checked,
    event_identity_review_required,
    event_reauthentication_failed,
    event_treated_as_categories,
    event_verification_link_sent,
)
from dsr.services.staff_actions import request_deny, request_verify
from dsr.services.transitions import request_locked
from dsr.validators import single_line_check


@transaction.atomic
def challenge_resend(*, request: DataSubjectRequest, template: str = "verify_email", actor: Actor | None = None):
    locked = request_locked(request.pk)
    if locked.status != Status.AWAITING_VERIFICATION or locked.email_verified_at:
        raise TransitionNotAllowed(gettext("This request is not waiting for an email confirmation."))
    issued = challenge_create(request=locked)
    audit_event_record(
        request=locked,
        event=event_verification_link_sent(actor=actor or Actor.requester(locked.email), template=template),
    )
    email_to_requester(request=locked, template=template, context=issued.email_context())
    return issued


class ChallengeRefused(InvalidInput):
    """The link or code did not work; the message says why without revealing anything else."""


def _email_verified(locked: DataSubjectRequest, *, method: str) -> DataSubjectRequest:
    locked.email_verified_at = timezone.now()
    locked.save(update_fields=["email_verified_at", "updated_at"])
    audit_event_record(request=locked, event=event_email_verified(email=locked.email, method=method))
    if identity.points_required(locked.request_type) <= 1:
        return request_verify(
            request=locked, actor=Actor.requester(locked.email), note="email address confirmed", method="email"
        )
    return locked


@transaction.atomic
def challenge_confirm_link(*, token: str) -> DataSubjectRequest:
    """The link from the email, confirmed with a button press (never on GET: mail scanners
    follow links)."""
    challenge = (
        VerificationChallenge.objects.select_related("request")
        .filter(token_hash=challenge_digest("token", token or ""))
        .first()
    )
    if challenge is None:
        raise ChallengeRefused(gettext("This link is not valid. Use the link in the most recent email we sent you."))
    locked = request_locked(challenge.request_id)
    challenge.refresh_from_db()
    if locked.email_verified_at:
        return locked  # already done: a second click is harmless
    if not challenge.is_live:
        raise ChallengeRefused(
            gettext("This link has been replaced by a newer one. Use the link in the most recent email.")
        )
    if challenge.expires_at < timezone.now():
        raise ChallengeRefused(gettext("This link has expired. Ask for a new one on your request page."))
    if locked.status != Status.AWAITING_VERIFICATION:
        raise ChallengeRefused(gettext("This request is no longer waiting for an email confirmation."))
    challenge.used_at = timezone.now()
    challenge.save(update_fields=["used_at"])
    return _email_verified(locked, method="link")


@dataclass(frozen=True)
class CodeResult:
    ok: bool
    message: str = ""
    request: DataSubjectRequest | None = None


@transaction.atomic
def challenge_confirm_code(*, request: DataSubjectRequest, code: str) -> CodeResult:
    """The short code typed on the status page. Every wrong try counts, and is kept even though
    the answer is no; after too many the code stops working and a new one must be sent."""
    locked = request_locked(request.pk)
    if locked.email_verified_at:
        return CodeResult(True, request=locked)
    if locked.status != Status.AWAITING_VERIFICATION:
        return CodeResult(False, gettext("This request is no longer waiting for an email confirmation."))
    challenge = VerificationChallenge.objects.filter(
        request=locked, used_at__isnull=True, revoked_at__isnull=True
    ).first()
    if challenge is None or challenge.expires_at < timezone.now():
        return CodeResult(False, gettext("This code has expired. Ask for a new one below."))
    if challenge.attempts >= settings.DSR_VERIFY_MAX_ATTEMPTS:
        return CodeResult(False, gettext("Too many wrong codes. Ask for a new one below."))
    challenge.attempts += 1
    code = "".join(ch for ch in (code or "") if ch.isdigit())
    if not hmac.compare_digest(challenge.code_hash, challenge_digest(f"code:{locked.pk}", code)):
        challenge.save(update_fields=["attempts"])
        left = settings.DSR_VERIFY_MAX_ATTEMPTS - challenge.attempts
        if left <= 0:
            return CodeResult(False, gettext("Too many wrong codes. Ask for a new one below."))
        return CodeResult(
            False,
            ngettext(
                "That code is not right. You can try %(left)d more time.",
                "That code is not right. You can try %(left)d more times.",
                left,
            )
            % {"left": left},
        )
    challenge.used_at = timezone.now()
    challenge.save(update_fields=["attempts", "used_at"])
    return CodeResult(True, request=_email_verified(locked, method="code"))


@dataclass(frozen=True)
class MatchResult:
    verified: bool
    matched: int
    required: int
    downgraded: bool = False
    review: bool = False  # the per-request cap was reached: the team reviews the request by hand
    attempts_left: int = 0


def identity_failures(events) -> int:
    """Failed identity-detail checks among a request's events: the cap counts per request, whatever
    the address the tries came from."""
    return sum(
        1 for e in events if e.event_type == EventType.IDENTITY_CHECKED and (e.data or {}).get("outcome") == "failed"
    )


def identity_review_needed(events) -> bool:
    return identity_failures(events) >= settings.DSR_IDENTITY_MAX_ATTEMPTS


@transaction.atomic
def identity_match_submit(
    *, request: DataSubjectRequest, claims: dict[str, str], declaration_name: str = "", declared: bool = False
) -> MatchResult:
    """Match what the requester typed against the data held. §7062: 2 points for categories, 3
    plus (CCPA) a signed declaration under penalty of perjury for specific pieces; §7024(a): an
    unverified CCPA specific-pieces request is answered as a categories request. Nothing the
    requester typed elsewhere in the request counts, and after DSR_IDENTITY_MAX_ATTEMPTS failed
    checks matching stops and the team reviews the request."""
    for key, value in claims.items():
        single_line_check(value, field=key)
    single_line_check(declaration_name, field="declaration_name")
    locked = request_locked(request.pk)
    if locked.status != Status.AWAITING_VERIFICATION or not locked.email_verified_at:
        raise TransitionNotAllowed(gettext("This request is not waiting for an identity check."))
    checks = list(locked.events.filter(event_type=EventType.IDENTITY_CHECKED).only("event_type", "data"))
    cap = settings.DSR_IDENTITY_MAX_ATTEMPTS
    if identity_review_needed(checks):
        # Guessing has a cap per request: a later right answer does not verify (RULES.md §3).
        raise TransitionNotAllowed(gettext("Our team is reviewing this request; we will contact you by email."))
    attempt = identity_failures(checks) + 1
    check = identity.identity_check_for(locked)
    record = identity.identity_provider().record_for(locked.email)
    supplied = identity.supplied_values(locked)
    corrected = locked.corrected_fields if locked.request_type == "rectification" else set()

    def assess(request_type: str) -> identity.ClaimsAssessed:
        counted = identity.claims_counted(request_type=request_type, corrected_fields=corrected)
        if record is None:
            return identity.ClaimsAssessed(set(), {})
        return identity.claims_assess(
            held=record.fields, claims=claims, counted=counted, supplied=supplied, corrected=corrected
        )

    assessed = assess(locked.request_type)
    matched = {"email"} | assessed.matched
    # §7062(c) is Californian: other regimes are asked for no declaration, and none is recorded.
    declared = check.declaration and declared and bool((declaration_name or "").strip())
    verified = len(matched) >= check.points_required and (declared or not check.declaration)
    fallback = None if verified else identity.fallback_type(regime=locked.regime, request_type=locked.request_type)
    fallback_matched = {"email"} | assess(fallback).matched if fallback else set()
    downgraded = fallback is not None and len(fallback_matched) >= identity.points_required(fallback)
    outcome = "verified" if verified else "verified_as_categories" if downgraded else "failed"
    # §7060(d): the values are not kept; which points matched, and why others did not count, is
    # what the record needs.
    audit_event_record(
        request=locked,
        event=event_identity_checked(
            email=locked.email,
            attempt=attempt,
            max_attempts=cap,
            outcome=outcome,
            points_matched=sorted(fallback_matched if downgraded else matched),
            points_not_counted=assessed.not_counted,
            points_offered=sorted(k for k, v in claims.items() if (v or "").strip()),
            required=check.points_required,
            declaration={"signed_as": declaration_name.strip(), "at": timezone.now()} if declared else None,
        ),
    )
    if verified:
        request_verify(
            request=locked,
            actor=Actor.requester(locked.email),
            note=f"{len(matched)} data points matched" + (", declaration signed" if declared else ""),
            method="data_match",
        )
        return MatchResult(True, len(matched), check.points_required)
    if downgraded and fallback is not None:
        locked.request_type = fallback
        locked.save(update_fields=["request_type", "updated_at"])
        audit_event_record(
            request=locked,
            event=event_treated_as_categories(
                reason="§7024(a): specific pieces could not be verified",
                from_type="access_specific",
                to_type=fallback,
            ),
        )
        request_verify(
            request=locked,
            actor=Actor.requester(locked.email),
            note="verified for categories only",
            method="data_match",
        )
        return MatchResult(True, len(fallback_matched), check.points_required, downgraded=True)
    if attempt >= cap:
        _identity_review_start(locked, attempts=attempt)
        return MatchResult(False, len(matched), check.points_required, review=True)
    return MatchResult(False, len(matched), check.points_required, attempts_left=cap - attempt)


def _identity_review_start(locked: DataSubjectRequest, *, attempts: int) -> None:
    """The cap is reached: automatic matching stops, the request is flagged and the team is told."""
    audit_event_record(
        request=locked,
        event=event_identity_review_required(
            failed_attempts=attempts,
            max_attempts=settings.DSR_IDENTITY_MAX_ATTEMPTS,
        ),
    )
    request_flag(
        request_id=locked.pk,
        reason=f"Identity check failed {attempts} times: review by hand",
        data={"failed_attempts": attempts},
    )
    email_to_staff(
        request=locked, template="staff_identity_review", recipients=staff_recipients(), context={"attempts": attempts}
    )


def verification_expire(*, request: DataSubjectRequest) -> DataSubjectRequest:
    """No proof of identity in time: close the request as unverifiable, telling the requester."""
    return request_deny(
        request=request,
        actor=Actor.system(SWEEP),
        reason_category="unverifiable",
        message=(
            "We could not confirm that this request came from you in time, so we have closed it. "
            "You are welcome to make a new request at any time."
        ),
    )


@transaction.atomic
def account_reauthenticate(*, request: DataSubjectRequest, user, password: str) -> bool:
    """§7061: an account holder verifies through their existing login plus re-authentication,
    never by creating an account. The account's email must be the request's."""
    locked = request_locked(request.pk)
    if locked.status != Status.AWAITING_VERIFICATION:
        raise TransitionNotAllowed(gettext("This request is not waiting for an identity check."))
    if not (user and user.is_authenticated and user.email and user.email.lower() == locked.email.lower()):
        raise TransitionNotAllowed(gettext("Sign in with the account that uses this email address."))
    if not user.check_password(password or ""):
        audit_event_record(request=locked, event=event_reauthentication_failed(email=locked.email))
        return False
    if not locked.email_verified_at:
        locked.email_verified_at = timezone.now()
        locked.save(update_fields=["email_verified_at", "updated_at"])
    request_verify(
        request=locked,
        actor=Actor.requester(locked.email),
        note="signed-in account holder re-authenticated",
        method="account_reauth",
    )
    return True

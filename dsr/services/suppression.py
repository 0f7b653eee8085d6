"""The suppression list: addresses that must not get marketing email, or whose data must not be
sold, shared or used as sensitive data (Art 21(3), CCPA §1798.120, §1798.121, §7025). An address
is kept as a keyed hash (HMAC-SHA256 under DSR_SUPPRESSION_KEY, which is never in the database),
so the list outlives an erasure and can be read by other systems without handing them addresses.
Written only here: when an opt-out request completes, when a form arrives with a Global Privacy
Control signal, and when an unsubscribe link is used. Adding what is already there changes nothing."""

import hashlib
import hmac
import unicodedata

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from dsr.models import DataSubjectRequest, RequestType, Suppression, SuppressionScope, SuppressionSource
from dsr.services.audit import audit_event_record
from dsr.services.events import event_suppression_added

# What each completed opt-out request puts on the list. Objection and consent withdrawal are not
# here: what they cover is the officer's reading of the request, not a fixed scope.
REQUEST_SCOPES = {
    RequestType.OPT_OUT_MARKETING: SuppressionScope.MARKETING,
    RequestType.OPT_OUT_SALE: SuppressionScope.SALE_SHARING,
    RequestType.LIMIT_SENSITIVE: SuppressionScope.SENSITIVE,
}


def email_normalised(email: str) -> str:
    """The form every source hashes: trimmed, NFKC, lower-cased (the intake compares addresses
    case-insensitively too). Dots and +tags are kept: they may be different mailboxes."""
    return unicodedata.normalize("NFKC", (email or "").strip()).lower()


def suppression_hash(email: str) -> str:
    key = settings.DSR_SUPPRESSION_KEY
    if not key:
        raise ImproperlyConfigured("DSR_SUPPRESSION_KEY is not set: the suppression list cannot hash addresses")
    message = b"dsr-suppression\x00" + email_normalised(email).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


@transaction.atomic
def suppression_add(
    *, email: str, scope: str, source: str, request: DataSubjectRequest | None = None
) -> Suppression | None:
    """Put the address on the list for `scope`; the new row, or None when it was already there
    (from this source or another: the first is kept). With a request, the addition is an event on
    its timeline, once."""
    if scope not in SuppressionScope.values or source not in SuppressionSource.values:
        raise ValueError(f"unknown suppression scope {scope!r} or source {source!r}")
    email_hash = suppression_hash(email)
    if Suppression.objects.filter(email_hash=email_hash, scope=scope).exists():
        return None
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction survives a lost race
            row = Suppression.objects.create(
                email_hash=email_hash, scope=scope, source=source, reference=request.reference if request else ""
            )
    except IntegrityError:  # added at the same moment by another source
        return None
    if request is not None:
        audit_event_record(request=request, event=event_suppression_added(scope=scope, source=source))
    return row


def suppression_add_for_request(*, request: DataSubjectRequest) -> Suppression | None:
    """A completed opt-out request puts its address on the list for what it opted out of."""
    scope = REQUEST_SCOPES.get(request.request_type)  # type: ignore[call-overload]
    if scope is None:
        return None
    return suppression_add(email=request.email, scope=scope, source=SuppressionSource.REQUEST, request=request)


def suppression_scopes(email: str) -> set[str]:
    """The scopes the address is suppressed for ("all" stands for every one)."""
    scopes = set(Suppression.objects.filter(email_hash=suppression_hash(email)).values_list("scope", flat=True))
    if SuppressionScope.ALL in scopes:
        scopes |= set(SuppressionScope.values)
    return scopes


def address_suppressed(*, email: str, scope: str) -> bool:
    return scope in suppression_scopes(email)

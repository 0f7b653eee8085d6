"""One-click unsubscribe links (RFC 8058). A link carries a signed, salted, timestamped reference to
a stored record (its random key): opaque, it reveals no address, and it stops working after
DSR_UNSUBSCRIBE_DAYS. Using one is intake's `unsubscribe_use`: it records a marketing opt-out once;
any repeat — the mail client's POST and then the person's click, two at the same moment — changes
nothing."""

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction

from dsr.models import MarketingUnsubscribe

# Versioned: tokens of the earlier format (the address itself, signed) no longer verify.
UNSUBSCRIBE_SALT = "dsr.unsubscribe.v2"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=UNSUBSCRIBE_SALT)


def unsubscribe_record_for(email: str) -> MarketingUnsubscribe:
    """The address's record, made on first need. Emails to one address share it, so unsubscribing
    through any of them counts once."""
    email = (email or "").strip().lower()
    record = MarketingUnsubscribe.objects.filter(email=email).first()
    if record is None:
        try:
            with transaction.atomic():
                record = MarketingUnsubscribe.objects.create(email=email)
        except IntegrityError:  # made at the same moment for another email to this address
            record = MarketingUnsubscribe.objects.get(email=email)
    return record


def unsubscribe_token(email: str) -> str:
    return _signer().sign(unsubscribe_record_for(email).key)


def unsubscribe_url(email: str) -> str:
    return f"{settings.SITE_URL}/unsubscribe/{unsubscribe_token(email)}/"


def unsubscribe_record_from_token(token: str) -> MarketingUnsubscribe | None:
    """The record a valid, unexpired token points to; None for anything else (forged, altered,
    expired, of the earlier format), without saying which."""
    try:
        key = _signer().unsign(token or "", max_age=settings.DSR_UNSUBSCRIBE_DAYS * 86400)
    except signing.BadSignature:  # SignatureExpired is one
        return None
    return MarketingUnsubscribe.objects.filter(key=key).first()

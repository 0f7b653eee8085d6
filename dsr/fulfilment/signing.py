"""Signed HTTP messages between the product and a processor's system, both ways: the product's
requests to an http system, the system's callback with its records (and the demo processor's
checks of the product's requests). HMAC-SHA256 under the system's secret over

    <timestamp>.<nonce>.<METHOD>.<path>.<body>

sent as `X-DSR-Timestamp` (Unix seconds), `X-DSR-Nonce` (random, 16-64 URL-safe characters) and
`X-DSR-Signature: v1=<hex>`. A verifier refuses a signature that does not match (compared in
constant time), a timestamp further than DSR_HTTP_SIGNATURE_MAX_AGE from its clock (either way),
and a nonce it has seen before: seen nonces are rows with a unique constraint, so a replay is
refused by every process, and they are purged by the fulfilment sweep once their timestamp would
be refused anyway."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dsr.fulfilment.models import SignatureNonce

TIMESTAMP_HEADER = "X-DSR-Timestamp"
NONCE_HEADER = "X-DSR-Nonce"
SIGNATURE_HEADER = "X-DSR-Signature"
VERSION = "v1"
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SIGNATURE_RE = re.compile(r"^v1=([0-9a-f]{64})$")


class SignatureInvalid(Exception):
    """The message is not signed by who it claims (or not signed, or out of its time window)."""

    status_code = 403
    code = "signature_invalid"


class SignatureReplayed(SignatureInvalid):
    """A correctly signed message seen before."""

    status_code = 409
    code = "signature_replayed"


def signature_compute(*, secret: str, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}.{nonce}.{method.upper()}.{path}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_headers(*, secret: str, method: str, path: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three headers that sign one message (a fresh nonce each time)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(24)
    signature = signature_compute(secret=secret, timestamp=timestamp, nonce=nonce, method=method, path=path, body=body)
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: f"{VERSION}={signature}"}


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a WSGI environ, or headers given in another case
        value = headers.get("HTTP_" + name.upper().replace("-", "_"))
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    if not value:
        raise SignatureInvalid(f"the {name} header is missing")
    return value.strip()


def signature_verify(
    *,
    secret: str,
    scope: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime | None = None,
) -> str:
    """Check one message's signature and record its nonce; returns the nonce. Raises
    SignatureInvalid (bad, missing or stale) or SignatureReplayed (the nonce was seen before).
    The nonce is recorded only for a message whose signature matches, so nobody can use up a
    sender's nonces with forged messages."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    nonce = _header(headers, NONCE_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureInvalid(f"{TIMESTAMP_HEADER} must be Unix time in seconds")
    if not NONCE_RE.match(nonce):
        raise SignatureInvalid(f"{NONCE_HEADER} must be 16 to 64 letters, digits, '-' or '_'")
    match = SIGNATURE_RE.match(given)
    if not match:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} must be 'v1=' and 64 hexadecimal digits")
    expected = signature_compute(secret=secret, timestamp=timestamp, nonce=nonce, method=method, path=path, body=body)
    if not hmac.compare_digest(expected, match.group(1)):
        raise SignatureInvalid("the signature does not match the message")
    now = now or timezone.now()
    signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    max_age = timedelta(seconds=settings.DSR_HTTP_SIGNATURE_MAX_AGE)
    if abs(now - signed_at) > max_age:
        raise SignatureInvalid(
            f"the message was signed at {signed_at:%Y-%m-%d %H:%M:%S} UTC, more than "
            f"{settings.DSR_HTTP_SIGNATURE_MAX_AGE} seconds from this server's clock; check the sender's clock"
        )
    try:
        with transaction.atomic():
            SignatureNonce.objects.create(scope=scope[:63], nonce=nonce, expires_at=signed_at + max_age)
    except IntegrityError:
        raise SignatureReplayed(f"the nonce {nonce} was used before: a message is accepted once") from None
    return nonce


def signature_nonces_purge(*, now: datetime | None = None) -> int:
    """Forget the nonces whose messages would be refused as stale anyway (the fulfilment sweep)."""
    deleted, _ = SignatureNonce.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted

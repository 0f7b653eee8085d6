"""What identity verification asks for (RULES.md §3) and where the business's own data is looked
up to match it. Pure rules here; the provider is the only part that reads the business's data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

# Data points a requester may offer, matched against data the business already holds (§7060(a),(c):
# nothing new and sensitive is collected for verification).
CLAIM_FIELDS = {
    "full_name": _("Your full name as we know it"),
    "phone": _("A phone number you gave us"),
    "postal_code": _("Your postal code"),
    "customer_number": _("Your customer or account number"),
}

# Points needed, the verified email address counting as one. §7062: categories → reasonable degree
# (2); specific pieces → reasonably high degree (3) plus a signed declaration; deletion and
# correction scaled to the data's sensitivity (2 by default); requests that only reduce
# processing need the email alone.
POINTS_REQUIRED = {
    "access": 2,
    "access_specific": 3,
    "portability": 3,
    "rectification": 2,
    "erasure": 2,
    "restriction": 1,
    "objection": 1,
    "withdraw_consent": 1,
}
DECLARATION_REQUIRED = frozenset({"access_specific", "portability"})
# §7024(a): an unverified request for specific pieces is treated as a request for categories.
FALLBACK_TYPE = {"access_specific": "access"}


def points_required(request_type: str) -> int:
    overrides = getattr(settings, "DSR_VERIFY_POINTS", {}) or {}
    return int(overrides.get(request_type, POINTS_REQUIRED.get(request_type, 0)))


def normalise(field: str, value: str) -> str:
    value = (value or "").strip().casefold()
    if field == "phone":
        return re.sub(r"\D", "", value)[-9:]  # the last nine digits survive country-code variants
    if field in ("postal_code", "customer_number"):
        return re.sub(r"[\s-]", "", value)
    return re.sub(r"\s+", " ", value)


def claims_matched(*, held: dict[str, str], claims: dict[str, str], excluded: set[str] = frozenset()) -> set[str]:
    """The claim names whose value equals what is held. §7060(h): correction is never verified
    with the field being corrected, so those are excluded."""
    matched = set()
    for field, value in claims.items():
        if field in excluded or field not in CLAIM_FIELDS:
            continue
        theirs, ours = normalise(field, value), normalise(field, held.get(field, ""))
        if theirs and ours and theirs == ours:
            matched.add(field)
    return matched


@dataclass(frozen=True)
class IdentityRecord:
    email: str
    fields: dict[str, str]


class IdentityProvider(Protocol):
    def record_for(self, email: str) -> IdentityRecord | None: ...


class DemoCustomerProvider:
    """The demo data of run mode: the DemoCustomer table stands in for the company's systems."""

    def record_for(self, email: str) -> IdentityRecord | None:
        from dsr.models import DemoCustomer

        row = DemoCustomer.objects.filter(email__iexact=email).first()
        if row is None:
            return None
        return IdentityRecord(
            email=row.email,
            fields={
                "full_name": row.full_name,
                "phone": row.phone,
                "postal_code": row.postal_code,
                "customer_number": row.customer_number,
            },
        )


def identity_provider() -> IdentityProvider:
    return import_string(settings.DSR_IDENTITY_PROVIDER)()

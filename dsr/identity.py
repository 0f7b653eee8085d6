"""What identity verification asks for (RULES.md §3) and where the business's own data is looked
up to match it. Pure rules here; the provider is the only part that reads the business's data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from dsr.models import DemoCustomer

# Data points a requester may offer, matched against data the business already holds (§7060(a),(c):
# nothing new and sensitive is collected for verification).
CLAIM_FIELDS = {
    "full_name": _("Your full name as we know it"),
    "phone": _("A phone number you gave us"),
    "postal_code": _("Your postal code"),
    "customer_number": _("Your customer or account number"),
}

# Points needed, the verified email address counting as one. §7062: categories → reasonable degree
# (2); specific pieces → reasonably high degree (3) plus, under the CCPA, a signed declaration;
# deletion and correction scaled to the data's sensitivity (2 by default, see CLAIMS_COUNTED);
# requests that only reduce processing need the email alone.
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

# Which claims can count, by type (§7062 "scaled to the sensitivity" and the risk of harm). A name
# is publicly knowable: it is a point only for the categories of data held, where a wrong answer
# harms least. A copy of the data, a deletion and a correction need points only the real person
# is likely to know — a phone number, postal code or customer number held from the relationship.
PUBLIC_CLAIMS = frozenset({"full_name"})
PRIVATE_CLAIMS = frozenset({"phone", "postal_code", "customer_number"})
CLAIMS_COUNTED = {
    "access": PUBLIC_CLAIMS | PRIVATE_CLAIMS,
    "access_specific": PRIVATE_CLAIMS,
    "portability": PRIVATE_CLAIMS,
    "rectification": PRIVATE_CLAIMS,
    "erasure": PRIVATE_CLAIMS,
    "restriction": PUBLIC_CLAIMS | PRIVATE_CLAIMS,
    "objection": PUBLIC_CLAIMS | PRIVATE_CLAIMS,
    "withdraw_consent": PUBLIC_CLAIMS | PRIVATE_CLAIMS,
}

# §7062(c): the declaration under penalty of perjury is a Californian rule for specific pieces.
# GDPR and elsewhere ask for nothing of the kind: Art 12(6) allows asking for more only on
# reasonable doubt, and only for what confirms identity, which a declaration does not.
DECLARATION_REQUIRED = frozenset({"access_specific", "portability"})
DECLARATION_REGIMES = frozenset({"ccpa"})
# §7024(a) (CCPA): an unverified request for specific pieces is treated as a request for categories.
FALLBACK_TYPE = {"access_specific": "access"}
FALLBACK_REGIMES = frozenset({"ccpa"})

# Why a claim that matched what is held was not counted (recorded by name, never with the value).
NOT_COUNTED_SUPPLIED = "given in this request"
NOT_COUNTED_TYPE = "not accepted for this type of request"
NOT_COUNTED_CORRECTED = "the field being corrected"


def points_required(request_type: str) -> int:
    overrides = getattr(settings, "DSR_VERIFY_POINTS", {}) or {}
    return int(overrides.get(request_type, POINTS_REQUIRED.get(request_type, 0)))


def declaration_required(*, regime: str, request_type: str) -> bool:
    return regime in DECLARATION_REGIMES and request_type in DECLARATION_REQUIRED


def fallback_type(*, regime: str, request_type: str) -> str | None:
    return FALLBACK_TYPE.get(request_type) if regime in FALLBACK_REGIMES else None


def claims_counted(*, request_type: str, corrected_fields=frozenset()) -> list[str]:
    """The claim fields that can count for this type, in form order. §7060(h): a correction is
    never verified with the field being corrected."""
    counted = CLAIMS_COUNTED.get(request_type, frozenset())
    excluded = set(corrected_fields) if request_type == "rectification" else set()
    return [f for f in CLAIM_FIELDS if f in counted and f not in excluded]


@dataclass(frozen=True)
class IdentityCheck:
    """What the status page asks for and the matching applies, for one request."""

    claim_fields: list[str]  # the details asked for
    points_required: int  # including the confirmed email address
    declaration: bool  # §7062(c), CCPA specific pieces only


def identity_check_for(request) -> IdentityCheck:
    return IdentityCheck(
        claim_fields=claims_counted(request_type=request.request_type, corrected_fields=request.corrected_fields),
        points_required=points_required(request.request_type),
        declaration=declaration_required(regime=request.regime, request_type=request.request_type),
    )


def normalise(field: str, value: str) -> str:
    value = (value or "").strip().casefold()
    if field == "phone":
        return re.sub(r"\D", "", value)[-9:]  # the last nine digits survive country-code variants
    if field in ("postal_code", "customer_number"):
        return re.sub(r"[\s-]", "", value)
    return re.sub(r"\s+", " ", value)


def _within(field: str, text: str) -> str:
    """A free text normalised as `field` is, for finding a claim inside it (all digits for a phone)."""
    if field == "phone":
        return re.sub(r"\D", "", (text or ""))
    return normalise(field, text)


def supplied_values(request) -> list[str]:
    """Everything the requester typed in this request: form fields, details, corrections, agent
    fields. None of it can prove who they are — whoever typed it knows it."""
    values = [request.email, request.full_name, request.details, request.agent_name, request.agent_email]
    for row in request.corrections or []:
        values += [row.get("wrong", ""), row.get("correct", "")]
    return [v for v in values if (v or "").strip()]


def _supplied(field: str, value: str, supplied: list[str]) -> bool:
    theirs = normalise(field, value)
    return any(theirs == normalise(field, text) or theirs in _within(field, text) for text in supplied)


@dataclass(frozen=True)
class ClaimsAssessed:
    matched: set  # claim fields that matched what is held and count
    not_counted: dict  # claim field → why a match did not count


def claims_assess(
    *, held: dict[str, str], claims: dict[str, str], counted: list[str], supplied: list[str], corrected=frozenset()
) -> ClaimsAssessed:
    """The claims whose value equals what is held, split into those that count and those that do
    not: not accepted for the type, the field being corrected, or typed elsewhere in the request."""
    matched, not_counted = set(), {}
    for field, value in claims.items():
        if field not in CLAIM_FIELDS:
            continue
        theirs, ours = normalise(field, value), normalise(field, held.get(field, ""))
        if not (theirs and ours and theirs == ours):
            continue
        if field not in counted:
            not_counted[field] = NOT_COUNTED_CORRECTED if field in corrected else NOT_COUNTED_TYPE
        elif _supplied(field, value, supplied):
            not_counted[field] = NOT_COUNTED_SUPPLIED
        else:
            matched.add(field)
    return ClaimsAssessed(matched, not_counted)


@dataclass(frozen=True)
class IdentityRecord:
    email: str
    fields: dict[str, str]


class IdentityProvider(Protocol):
    def record_for(self, email: str) -> IdentityRecord | None: ...


class DemoCustomerProvider:
    """The demo data of run mode: the DemoCustomer table stands in for the company's systems."""

    def record_for(self, email: str) -> IdentityRecord | None:
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

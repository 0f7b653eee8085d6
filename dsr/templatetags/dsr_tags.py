from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

from dsr.event_types import EventType
from dsr.services.documents import document_download_name

register = template.Library()

# What the requester sees of the timeline; internal events (reminders, escalations) stay staff-only.
PUBLIC_EVENT_LABELS: dict[str, Any] = {
    EventType.RECEIVED: _("We received your request"),
    EventType.VERIFICATION_STARTED: _("We asked you to confirm your identity"),
    EventType.VERIFICATION_NOT_REQUIRED: _("No identity check needed; we started work"),
    EventType.ACKNOWLEDGED: _("We confirmed receipt by email"),
    EventType.VERIFIED: _("Your identity was confirmed"),
    EventType.APPROVED: _("We started work on your request"),
    EventType.INFORMATION_REQUESTED: _("We asked you for more information"),
    EventType.REQUESTER_REPLIED: _("You replied"),
    EventType.EXTENDED: _("We extended the deadline"),
    EventType.EMAIL_VERIFIED: _("You confirmed your email address"),
    EventType.VERIFICATION_LINK_SENT: _("We sent you a new confirmation link"),
    EventType.TREATED_AS_CATEGORIES: _("We will answer as a request for the categories of data we hold"),
    EventType.COMPLETED: _("Your request was completed"),
    EventType.DENIED: _("Your request was refused"),
    EventType.CANCELLED: _("Your request was cancelled"),
    EventType.REOPENED: _("Your request was reopened"),
    EventType.IDENTITY_REVIEW_REQUIRED: _("Our team will review your request by hand"),
    EventType.CORRECTION_STATEMENT_RECEIVED: _("We received your statement and keep it with your request"),
}

STAFF_EVENT_LABELS: dict[str, Any] = {
    **PUBLIC_EVENT_LABELS,
    EventType.ACKNOWLEDGEMENT_DUE: _("Acknowledgement not yet sent"),
    EventType.RESPONSE_DUE_SOON: _("Response due soon"),
    EventType.OVERDUE: _("Overdue"),
    EventType.CLOCK_RESUMED: _("Clock resumed"),
    EventType.IDENTITY_CHECKED: "Identity details checked",
    EventType.IDENTITY_REVIEW_REQUIRED: "Identity check stopped: review by hand",
    # Fulfilment: the search across the systems and the access package (staff wording).
    EventType.FULFILMENT_STARTED: "Search across the systems started",
    EventType.FULFILMENT_SYSTEM_REQUESTED: "System asked; it answers later",
    EventType.FULFILMENT_SYSTEM_DONE: "System searched",
    EventType.FULFILMENT_SYSTEM_FAILED: "System failed",
    EventType.FULFILMENT_SYSTEM_RETRIED: "System retried",
    EventType.FULFILMENT_SYSTEM_SWITCHED_TO_MANUAL: "System asked of its owner",
    EventType.FULFILMENT_MANUAL_ANSWERED: "Owner answered",
    EventType.FULFILMENT_FINISHED: "Search finished",
    EventType.PACKAGE_BUILT: "Access package built",
    EventType.PACKAGE_CODE_SENT: "Download code sent to the requester",
    EventType.PACKAGE_DOWNLOADED: "Access package downloaded",
    EventType.PACKAGE_PURGED: "Access package deleted",
    EventType.PACKAGE_REISSUED: "Access package re-issued",
    EventType.SUPPRESSION_ADDED: "Address added to the suppression list",
    EventType.ERASURE_PLANNED: "Erasure planned; awaiting approval",
    EventType.ERASURE_APPROVED: "Erasure plan approved",
    EventType.ERASURE_PLAN_CHANGED: "Data changed since the plan; re-planned for approval",
    EventType.ERASURE_EXECUTED: "System erased",
    EventType.ERASURE_VERIFIED: "Erasure verified",
    EventType.ERASURE_FAILED: "Erasure failed in a system",
    EventType.ERASURE_REPLAYED: "Erasure replayed after a restore",
    EventType.CORRECTION_VALUES_READ: "Current values read for the corrections",
    EventType.CORRECTION_READ_FAILED: "Current values could not be read in a system",
    EventType.CORRECTIONS_DECIDED: "Corrections decided",
    EventType.CORRECTIONS_PASSED_ON: "Corrections passed on to recipients",
    EventType.INSTRUCTION_SENT: "System told; waiting for its confirmation",
    EventType.INSTRUCTION_CONFIRMED: "System confirmed",
    EventType.INSTRUCTION_FAILED: "System could not be told",
}

# Staff lines summarised by identity_check_summary rather than by their message or reason.
IDENTITY_CHECK_EVENTS = frozenset({EventType.IDENTITY_CHECKED, EventType.IDENTITY_REVIEW_REQUIRED})


@register.filter
def public_events(events):
    return [e for e in events if e.event_type in PUBLIC_EVENT_LABELS]


@register.filter
def event_label(event_type: str, audience: str = "public"):
    labels = PUBLIC_EVENT_LABELS if audience == "public" else STAFF_EVENT_LABELS
    return labels.get(event_type, event_type.replace("_", " "))


@register.filter
def is_identity_check(event) -> bool:
    return event.event_type in IDENTITY_CHECK_EVENTS


@register.filter
def days_left(due, today):
    return (due - today).days if due and today else None


@register.filter
def last_question(events):
    asked = [e for e in events if e.event_type == EventType.INFORMATION_REQUESTED]
    return asked[-1].data.get("message", "") if asked else ""


@register.filter
def document_name(document) -> str:
    """The name a requester's file is downloaded under (never the name they gave it)."""
    return document_download_name(document)


POINT_NAMES = {
    "email": "email",
    "full_name": "name",
    "phone": "phone",
    "postal_code": "postal code",
    "customer_number": "customer number",
}
OUTCOMES = {
    "verified": "verified",
    "verified_as_categories": "verified for categories only (§7024(a))",
    "failed": "did not verify",
}


def _points(names) -> str:
    return ", ".join(POINT_NAMES.get(n, str(n)) for n in names) or "none"


@register.filter
def identity_check_summary(event) -> str:
    """A staff line for an identity check: attempt n of N, which points matched and which matches
    did not count (by name, never the typed values), and the outcome."""
    data = event.data or {}
    if event.event_type == EventType.IDENTITY_REVIEW_REQUIRED:
        return (
            f"{data.get('failed_attempts')} failed attempts of {data.get('max_attempts')} allowed; "
            "the request is flagged"
        )
    parts = []
    if data.get("attempt"):
        parts.append(f"attempt {data['attempt']} of {data.get('max_attempts')}")
    matched = data.get("points_matched") or []
    parts.append(f"matched {_points(matched)} ({len(matched)} of {data.get('required')} needed)")
    not_counted = data.get("points_not_counted") or {}
    if not_counted:
        parts.append(
            "not counted: " + ", ".join(f"{POINT_NAMES.get(k, k)} ({why})" for k, why in sorted(not_counted.items()))
        )
    if data.get("declaration"):
        parts.append("declaration signed")
    if data.get("outcome"):
        parts.append(OUTCOMES.get(data["outcome"], data["outcome"]))
    return " · ".join(parts)

"""Every email the product sends, with an example rendering: the source of docs/emails.md and of
the tests that check each one renders in each language."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from dsr.models import DataSubjectRequest, Organisation, OutboundEmail


@dataclass(frozen=True)
class EmailKind:
    template: str
    audience: str  # "requester", "staff" or "organisation"
    when: str
    context: dict


def sample_request(**overrides) -> DataSubjectRequest:
    fields = {
        "reference": "DSR-2026-000042",
        "public_token": "example-private-token",
        "request_type": "erasure",
        "regime": "gdpr",
        "channel": "web",
        "language": "en",
        "status": "awaiting_verification",
        "email": "alex@example.org",
        "full_name": "Alex Example",
        "received_at": datetime(2026, 3, 5, 9, 30, tzinfo=UTC),
        "acknowledge_by": date(2026, 3, 19),
        "original_respond_by": date(2026, 4, 7),
        "respond_by": date(2026, 4, 7),
        "verify_expire_on": date(2026, 3, 26),
        "verification_method": "data_match",
    }
    fields.update(overrides)
    return DataSubjectRequest(**fields)


VERIFY = {
    "verify_url": "https://privacy.example.com/v/example-link-token/",
    "verify_code": "493027",
    "verify_hours": 72,
}
ORG = Organisation(name="Acme Corporation", email_domain="acme.example", admin_contact_email="it-admin@acme.example")

CATALOGUE = [
    EmailKind(
        "received",
        "requester",
        "On receipt: the acknowledgement (§7021(a)), verification steps, the deadline.",
        {**VERIFY},
    ),
    EmailKind("verify_email", "requester", "The requester asked for a new link and code.", {**VERIFY}),
    EmailKind(
        "verify_reminder",
        "requester",
        "The email address is still unconfirmed after DSR_VERIFY_REMIND_DAYS.",
        {**VERIFY},
    ),
    EmailKind("verified", "requester", "Identity confirmed.", {}),
    EmailKind("approved", "requester", "Work on the request has started.", {}),
    EmailKind(
        "information_requested",
        "requester",
        "The team needs more information (and, where allowed, the clock pauses).",
        {"message": "Please tell us the order number of your last purchase.", "clock_paused": True},
    ),
    EmailKind("reply_received", "requester", "The requester answered a question.", {}),
    EmailKind(
        "extended",
        "requester",
        "The deadline was extended, with the reason, before the original deadline.",
        {
            "reason": "Your data is spread over several systems that we must search one by one.",
            "previous_deadline": date(2026, 4, 7),
        },
    ),
    EmailKind(
        "completed",
        "requester",
        "Done; or done in part, with what was kept and why.",
        {
            "message": "We deleted your account, orders older than the legal retention period and your chat history. "
            "We keep invoices for seven years because tax law requires it.",
            "outcome": "complied_in_part",
        },
    ),
    EmailKind(
        "opt_out_confirmed",
        "requester",
        "An opt-out or limit was carried out.",
        {"message": "Recorded on 6 March 2026."},
    ),
    EmailKind(
        "denied",
        "requester",
        "Refused, with the reason; GDPR: the right to complain; a refused CCPA deletion: the opt-out offer.",
        {"message": "We could not confirm your identity with the information we hold.", "offer_opt_out": False},
    ),
    EmailKind(
        "cancelled",
        "requester",
        "Cancelled (withdrawn, or a duplicate closed by the team).",
        {"message": "You withdrew the request by phone."},
    ),
    EmailKind("reopened", "requester", "A closed request was reopened.", {"message": "You sent new evidence."}),
    EmailKind(
        "duplicate",
        "requester",
        "The same request is already open: linked to it, no second clock.",
        {"original": None, "original_status_url": "https://privacy.example.com/r/example-original-token/"},
    ),
    EmailKind(
        "forwarded",
        "requester",
        "A user of an organisation's account: forwarded to its administrator.",
        {"organisation": ORG},
    ),
    EmailKind(
        "team_message",
        "requester",
        "A message from the privacy team.",
        {"message": "We have found two accounts with your address; we will include both."},
    ),
    EmailKind(
        "package_code",
        "requester",
        "The requester asked on the status page for a code to download their access package.",
        {"verify_code": "815204", "minutes": 15},
    ),
    EmailKind(
        "package_reissued",
        "requester",
        "Staff made an expired access package downloadable again (no new search).",
        {"expires_at": datetime(2026, 5, 7, 9, 30, tzinfo=UTC)},
    ),
    EmailKind(
        "organisation_forward",
        "organisation",
        "To the organisation's administrator, with the request.",
        {"organisation": ORG},
    ),
    EmailKind("staff_new_verified", "staff", "A requester finished verification.", {}),
    EmailKind(
        "staff_assigned",
        "staff",
        "A request was assigned to this officer by someone else.",
        {"by": "olivia", "assignee": None},
    ),
    EmailKind("staff_acknowledgement_due", "staff", "The acknowledgement has not gone out two days after receipt.", {}),
    EmailKind("staff_due_soon", "staff", "DSR_REMINDER_DAYS before the deadline.", {"days_left": 7}),
    EmailKind("staff_overdue", "staff", "The deadline has passed and the request is open.", {}),
    EmailKind(
        "staff_delivery_failed",
        "staff",
        "An email to the requester bounced or could not be sent; the request is flagged.",
        {"failed": OutboundEmail(template="received", to="alex@example.org"), "failure": "bounced"},
    ),
    EmailKind(
        "staff_identity_review",
        "staff",
        "Identity details failed DSR_IDENTITY_MAX_ATTEMPTS times: matching stopped, the request is flagged.",
        {"attempts": 5},
    ),
]


# Fulfilment's emails about a system of the data map (dsr/fulfilment/services/manual_tasks.py).
SYSTEM = {"name": "crm_spreadsheet", "description": "The sales team's spreadsheet.", "owner": "sales@example.com"}
TASK_URL = "https://privacy.example.com/fulfilment/task/example-task-token/"

CATALOGUE += [
    EmailKind(
        "owner_task",
        "owner",
        "A manual system is to be searched (or the officer asked its owner instead): the private task link.",
        {"system": SYSTEM, "task_url": TASK_URL},
    ),
    EmailKind(
        "owner_reminder",
        "owner",
        "The owner has not answered after DSR_MANUAL_REMIND_DAYS (or the system's remind_days); repeated.",
        {"system": SYSTEM, "task_url": TASK_URL, "asked_on": date(2026, 3, 9), "days_left": 12},
    ),
    EmailKind(
        "staff_owner_unanswered",
        "staff",
        "A manual system's owner is still silent five days before the request's due date (once).",
        {"system": SYSTEM, "owner": {"email": "sales@example.com"}, "asked_on": date(2026, 3, 9), "days_left": 5},
    ),
    EmailKind(
        "owner_instruction",
        "owner",
        "A manual system is told what to do (erase, restrict, opt out, limit, correct): the private task link.",
        {"system": SYSTEM, "task_url": TASK_URL, "action": "erase the person's records"},
    ),
    EmailKind(
        "owner_instruction_reminder",
        "owner",
        "The owner has not confirmed an instruction after DSR_MANUAL_REMIND_DAYS (or the system's remind_days).",
        {
            "system": SYSTEM,
            "task_url": TASK_URL,
            "action": "erase the person's records",
            "asked_on": date(2026, 3, 9),
            "days_left": 12,
        },
    ),  # fmt: skip
    EmailKind(
        "staff_instruction_unconfirmed",
        "staff",
        "A system told what to do has not confirmed: a manual owner five days before the due date, an http "
        "system told twice (or near the due date); once.",
        {
            "system": SYSTEM,
            "owner": {"email": "sales@example.com"},
            "action": "erase the person's records",
            "kind": "manual",
            "asked_on": date(2026, 3, 9),
            "days_left": 5,
        },
    ),  # fmt: skip
]


def sample_context(kind: EmailKind, language: str = "en") -> dict:
    request = sample_request(language=language)
    context = {
        "request": request,
        "status_url": "https://privacy.example.com/r/example-private-token/",
        "staff_url": "https://privacy.example.com/staff/requests/DSR-2026-000042/",
        **kind.context,
    }
    if kind.template == "duplicate":
        context["original"] = sample_request(reference="DSR-2026-000017", language=language)
    return context

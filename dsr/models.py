"""The domain's tables. No business logic lives here: services write, selectors read."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from knox.models import AbstractAuthToken

from dsr.storage import PrivateStorage


class RequestType(models.TextChoices):
    ACCESS = "access", _("See what data you hold about me (categories)")
    ACCESS_SPECIFIC = "access_specific", _("Get a copy of my data")
    PORTABILITY = "portability", _("Get my data in a portable format")
    RECTIFICATION = "rectification", _("Correct my data")
    ERASURE = "erasure", _("Delete my data")
    RESTRICTION = "restriction", _("Restrict the use of my data")
    OBJECTION = "objection", _("Object to the use of my data")
    WITHDRAW_CONSENT = "withdraw_consent", _("Withdraw my consent")
    OPT_OUT_SALE = "opt_out_sale", _("Do not sell or share my personal information")
    OPT_OUT_MARKETING = "opt_out_marketing", _("Stop marketing email")
    LIMIT_SENSITIVE = "limit_sensitive", _("Limit the use of my sensitive personal information")


# §7060(b), §7027: these are honoured without identity verification.
TYPES_WITHOUT_VERIFICATION = frozenset(
    {RequestType.OPT_OUT_SALE, RequestType.OPT_OUT_MARKETING, RequestType.LIMIT_SENSITIVE}
)


class Regime(models.TextChoices):
    CCPA = "ccpa", _("California (CCPA)")
    GDPR = "gdpr", _("EU/EEA, UK or Switzerland (GDPR)")
    OTHER = "other", _("Elsewhere")


class Channel(models.TextChoices):
    WEB = "web", _("Web form")
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")
    MAIL = "mail", _("Post")
    IN_PERSON = "in_person", _("In person")


class Language(models.TextChoices):
    EN = "en", "English"
    SV = "sv", "Svenska"
    NL = "nl", "Nederlands"


class Status(models.TextChoices):
    RECEIVED = "received", _("Received")
    AWAITING_VERIFICATION = "awaiting_verification", _("Awaiting identity verification")
    VERIFIED = "verified", _("Verified")
    IN_PROGRESS = "in_progress", _("In progress")
    AWAITING_REQUESTER = "awaiting_requester", _("Waiting for your reply")
    COMPLETED = "completed", _("Completed")
    DENIED = "denied", _("Denied")
    CANCELLED = "cancelled", _("Cancelled")
    FORWARDED = "forwarded", _("Forwarded to your organisation's administrator")


OPEN_STATUSES = (
    Status.RECEIVED,
    Status.AWAITING_VERIFICATION,
    Status.VERIFIED,
    Status.IN_PROGRESS,
    Status.AWAITING_REQUESTER,
)
CLOSED_STATUSES = (Status.COMPLETED, Status.DENIED, Status.CANCELLED, Status.FORWARDED)


class Relationship(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    VISITOR = "visitor", _("Website visitor")
    APPLICANT = "applicant", _("Job applicant")
    ORG_USER = "org_user", _("User of an organisation's account (for example through your employer)")


# Rectification, field by field (Art 16, §7023): what the request form lets a person say is wrong.
# The data map names the same words (`corrects:`) for the field of each system that holds them.
CORRECTION_FIELD_LABELS = {
    "full_name": _("Name"),
    "email": _("Email address"),
    "phone": _("Phone number"),
    "postal_address": _("Postal address"),
    "postal_code": _("Postal code"),
    "customer_number": _("Customer or account number"),
    "other": _("Something else"),
}
CORRECTABLE_FIELDS = tuple(CORRECTION_FIELD_LABELS)


class AccessPeriod(models.TextChoices):
    # [policy] the last 12 months by default; §7024(h): back to 1 January 2022 on request.
    LAST_12_MONTHS = "12_months", _("The last 12 months")
    SINCE_2022 = "since_2022", _("Everything since 1 January 2022")


class Outcome(models.TextChoices):
    COMPLIED = "complied", _("Complied with in whole")
    COMPLIED_IN_PART = "complied_in_part", _("Complied with in part")
    DENIED = "denied", _("Denied")
    CANCELLED = "cancelled", _("Cancelled")


class DenialReason(models.TextChoices):
    UNVERIFIABLE = "unverifiable", _("Identity could not be verified")
    NOT_A_CONSUMER = "not_a_consumer", _("Not a consumer of this business")
    EXEMPT = "exempt", _("An exemption applies")
    MANIFESTLY_UNFOUNDED = "manifestly_unfounded", _("Manifestly unfounded")
    EXCESSIVE = "excessive", _("Excessive")
    OTHER = "other", _("Other")


def private_storage():
    """Outside STATIC and any served path: files are reached only through staff views."""
    return PrivateStorage()


def public_token_new() -> str:
    return secrets.token_urlsafe(32)


class DataSubjectRequest(models.Model):
    reference = models.CharField(max_length=20, unique=True, editable=False)
    # The requester's private links carry this, never the reference, which staff say aloud.
    public_token = models.CharField(max_length=64, unique=True, default=public_token_new, editable=False)

    request_type = models.CharField(max_length=24, choices=RequestType.choices)
    regime = models.CharField(max_length=8, choices=Regime.choices)
    channel = models.CharField(max_length=12, choices=Channel.choices, default=Channel.WEB)
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.EN)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RECEIVED)

    email = models.EmailField(max_length=254)
    # The address as every look-up compares it (duplicates, the two-per-year rule, search): lower-
    # cased by the database itself, stored and indexed, so an equality on it uses the index on
    # every database (SQLite's case-insensitive LIKE cannot). Compare with `email_key_of(text)`.
    email_key = models.GeneratedField(
        expression=Lower("email"), output_field=models.CharField(max_length=254), db_persist=True
    )
    full_name = models.CharField(max_length=200, blank=True)
    details = models.TextField(blank=True)
    # Rectification, field by field: [{"field": ..., "wrong": ..., "correct": ...}] (Art 16, §7023).
    corrections = models.JSONField(default=list, blank=True)
    relationship = models.CharField(max_length=12, choices=Relationship.choices, default=Relationship.CUSTOMER)
    access_period = models.CharField(max_length=12, choices=AccessPeriod.choices, default=AccessPeriod.LAST_12_MONTHS)
    # §7063: an authorised agent acts with the consumer's signed permission or a power of attorney;
    # the consumer still confirms directly (the verification email goes to the consumer).
    agent_name = models.CharField(max_length=200, blank=True)
    agent_email = models.EmailField(max_length=254, blank=True)
    agent_power_of_attorney = models.BooleanField(default=False)
    # §7025: the browser sent a Global Privacy Control signal with the submission.
    gpc_signal = models.BooleanField(default=False)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates")
    organisation = models.ForeignKey(
        "Organisation", null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )

    received_at = models.DateTimeField()
    # Deadlines are dates in the business time zone, computed at receipt and recomputed only by
    # recorded events (extension, pause) — RULES.md §2.
    acknowledge_by = models.DateField(null=True, blank=True)
    original_respond_by = models.DateField()
    respond_by = models.DateField()
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    paused_days = models.PositiveIntegerField(default=0)

    verified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    denial_reason = models.CharField(max_length=24, choices=DenialReason.choices, blank=True)
    response_message = models.TextField(blank=True)

    # Identity verification (RULES.md §3): email ownership first, then a risk-scaled match.
    email_verified_at = models.DateTimeField(null=True, blank=True)
    verification_method = models.CharField(max_length=24, blank=True)

    # The sweep's due dates: each is the day a timer fires, cleared once it has fired or no longer
    # applies. The sweep reads only rows whose date has come (partial indexes below).
    verify_remind_on = models.DateField(null=True, blank=True)
    verify_expire_on = models.DateField(null=True, blank=True)
    ack_alert_on = models.DateField(null=True, blank=True)
    remind_on = models.DateField(null=True, blank=True)
    overdue_on = models.DateField(null=True, blank=True)
    overdue_since = models.DateField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_requests"
    )
    # Something the team must look at (an email to the requester bounced, ...).
    flagged_at = models.DateTimeField(null=True, blank=True)
    flag_reason = models.CharField(max_length=200, blank=True)

    # The head of the audit chain, so that removing the newest events is detected too.
    audit_seq = models.PositiveIntegerField(default=0)
    audit_head = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["respond_by", "id"]
        indexes = [
            models.Index(fields=["status", "respond_by"], name="dsr_req_status_due"),
            # The staff list's order (ORDER BY respond_by, id LIMIT …) and the queue's default (the open
            # requests, soonest due first) read an index in order instead of sorting the table.
            models.Index(fields=["respond_by", "id"], name="dsr_req_due_id"),
            models.Index(
                fields=["respond_by", "id"],
                name="dsr_req_open_due_id",
                condition=Q(
                    status__in=["received", "awaiting_verification", "verified", "in_progress", "awaiting_requester"]
                ),
            ),
            # Look-ups by address ignore case: duplicates, the two-per-year rule, search.
            models.Index(fields=["email_key", "request_type"], name="dsr_req_email_key_type"),
            models.Index(fields=["received_at"], name="dsr_req_received"),
            models.Index(fields=["ack_alert_on"], name="dsr_req_ack_alert", condition=Q(ack_alert_on__isnull=False)),
            models.Index(
                fields=["verify_remind_on"], name="dsr_req_verify_remind", condition=Q(verify_remind_on__isnull=False)
            ),
            models.Index(
                fields=["verify_expire_on"], name="dsr_req_verify_expire", condition=Q(verify_expire_on__isnull=False)
            ),
            models.Index(fields=["remind_on"], name="dsr_req_remind", condition=Q(remind_on__isnull=False)),
            models.Index(fields=["overdue_on"], name="dsr_req_overdue", condition=Q(overdue_on__isnull=False)),
            models.Index(fields=["closed_at"], name="dsr_req_closed", condition=Q(closed_at__isnull=False)),
        ]
        permissions = [
            ("work_requests", "Can work data-subject requests (privacy officer)"),
            ("comment_requests", "Can read requests and add internal notes (reviewer)"),
        ]

    def __str__(self):
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_extended(self) -> bool:
        return self.extended_at is not None

    @property
    def corrected_fields(self) -> set[str]:
        return {c.get("field", "") for c in self.corrections or []}


class ClockPause(models.Model):
    """A GDPR pause while waiting for identity information (EDPB ¶159, off by default)."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="pauses")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    started_on = models.DateField()
    ended_on = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request"], condition=Q(ended_at__isnull=True), name="dsr_one_open_pause"),
        ]

    def __str__(self):
        return f"{self.request_id} paused {self.started_on}–{self.ended_on or '…'}"


class VerificationChallenge(models.Model):
    """Proof of email ownership: a link token and a short code, either works once. Only their
    hashes are stored; a new challenge (resend, reminder) revokes the one before it."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="challenges")
    token_hash = models.CharField(max_length=64, unique=True)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"challenge for {self.request_id} ({'live' if self.is_live else 'used or revoked'})"

    @property
    def is_live(self) -> bool:
        return self.used_at is None and self.revoked_at is None


class Organisation(models.Model):
    """[policy] An enterprise customer whose users' data its own administrator controls: requests
    from its users are recorded and forwarded to the administrator contact."""

    name = models.CharField(max_length=200)
    email_domain = models.CharField(max_length=253, unique=True, help_text="e.g. acme.example")
    admin_contact_email = models.EmailField()

    def __str__(self):
        return self.name


class RequestDocument(models.Model):
    """A file a requester sent (an agent's signed permission, evidence for a correction, an ID).
    Stored privately, never served publicly; identity documents are deleted once decided."""

    class Kind(models.TextChoices):
        AGENT_AUTHORISATION = "agent_authorisation", _("Signed permission for an agent")
        EVIDENCE = "evidence", _("Evidence for a correction")
        IDENTITY = "identity", _("Identity document")

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    file = models.FileField(upload_to="requests/%Y/%m/", storage=private_storage, blank=True)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.get_kind_display()} for {self.request_id}"


class ClosedRequestStat(models.Model):
    """What is left of a request after its retention period (§7101: 24 months): no personal data,
    just enough for the §7102 metrics of past years."""

    year = models.PositiveIntegerField()
    request_type = models.CharField(max_length=24)
    regime = models.CharField(max_length=8)
    channel = models.CharField(max_length=12)
    outcome = models.CharField(max_length=20, blank=True)
    denial_reason = models.CharField(max_length=24, blank=True)
    days_to_response = models.PositiveIntegerField(null=True, blank=True)
    purged_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["year", "request_type"], name="dsr_stat_year_type")]

    def __str__(self):
        return f"{self.year} {self.regime} {self.request_type} {self.outcome}"


class DemoCustomer(models.Model):
    """Run mode's stand-in for the company's customer records, matched during verification."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200)
    phone = models.CharField(max_length=40, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    customer_number = models.CharField(max_length=40, blank=True)

    def __str__(self):
        return self.email


def unsubscribe_key_new() -> str:
    return secrets.token_urlsafe(16)


class MarketingUnsubscribe(models.Model):
    """One-click unsubscribe (RFC 8058) for an address. Links carry a signed, expiring reference
    to this row's random key, never the address; the first use records the opt-out, a repeat
    changes nothing (used_at is claimed with a conditional UPDATE)."""

    key = models.CharField(max_length=32, unique=True, default=unsubscribe_key_new, editable=False)
    email = models.EmailField(max_length=254, unique=True)  # lower-cased
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.email


class SuppressionScope(models.TextChoices):
    MARKETING = "marketing", "Marketing email"
    SALE_SHARING = "sale_sharing", "Sale or sharing of personal information"
    SENSITIVE = "sensitive", "Use of sensitive personal information"
    ALL = "all", "Everything above"


class SuppressionSource(models.TextChoices):
    REQUEST = "request", "An opt-out request completed"
    GPC = "gpc", "A Global Privacy Control signal"
    UNSUBSCRIBE = "unsubscribe", "An unsubscribe link"
    STAFF = "staff", "Privacy staff"


class Suppression(models.Model):
    """An address that must not get what `scope` names: a keyed hash of it (HMAC-SHA256 under
    DSR_SUPPRESSION_KEY, dsr.services.suppression), never the address, so the list can be kept and
    shared after the person's other data is erased. One row per address and scope: the first
    source to add it is kept."""

    email_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=20, choices=SuppressionScope.choices)
    source = models.CharField(max_length=20, choices=SuppressionSource.choices)
    reference = models.CharField(max_length=20, blank=True)  # the request that added it, if any
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email_hash", "scope"], name="suppression_once_per_scope")]

    def __str__(self):
        return f"{self.email_hash[:12]}… {self.scope}"


def email_key_of(address: str):
    """What `DataSubjectRequest.email_key` holds for `address`, lower-cased by the same database
    function (SQLite folds ASCII only, PostgreSQL all of Unicode: both sides the same way)."""
    return Lower(models.Value(address.strip(), output_field=models.CharField()))


class ReferenceCounter(models.Model):
    """The last reference number handed out in a year: DSR-2026-000042."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.year}: {self.last}"


class ActorType(models.TextChoices):
    STAFF = "staff", _("Staff")
    REQUESTER = "requester", _("Requester")
    SYSTEM = "system", _("System")


class AuditEvent(models.Model):
    """Append-only. Each row's hash covers its content and the previous row's hash, so a changed,
    removed or reordered row breaks the request's chain (`manage.py dsr_verify_audit`). The record
    outlives the erasure it documents (§7101, RULES.md §6)."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveIntegerField()
    event_type = models.CharField(max_length=40)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    from_status = models.CharField(max_length=24, blank=True)
    to_status = models.CharField(max_length=24, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # The audit key that signed `hash` (HMAC-SHA256); empty for the plain SHA-256 of events written
    # before the chain was keyed, which stay verifiable as they were (the trigger forbids UPDATE).
    key_id = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["request_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["request", "seq"], name="dsr_event_seq_unique")]

    def __str__(self):
        return f"{self.request_id}#{self.seq} {self.event_type}"


class AuditTombstone(models.Model):
    """What the retention purge leaves of a request's audit chain (§7101: the record may go after
    24 months): its reference, last event and head, signed with the audit key, so that
    `dsr_verify_audit` tells a purge from a deletion. Append-only like the events."""

    reference = models.CharField(max_length=20, unique=True)
    last_seq = models.PositiveIntegerField()
    head_hash = models.CharField(max_length=64, blank=True)
    purged_at = models.DateTimeField()
    key_id = models.CharField(max_length=32)
    mac = models.CharField(max_length=64)

    def __str__(self):
        return f"{self.reference} purged at #{self.last_seq}"


class EmailStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class OutboundEmail(models.Model):
    """An email is a row written in the same transaction as the event that causes it; a task sends
    it. Nothing is sent for a transaction that rolled back."""

    request = models.ForeignKey(
        DataSubjectRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="emails"
    )
    template = models.CharField(max_length=60)
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.EN)
    to = models.EmailField(max_length=254)
    subject = models.CharField(max_length=250)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=EmailStatus.choices, default=EmailStatus.QUEUED)
    # What the ESP reported afterwards through anymail's tracking webhooks.
    delivery_status = models.CharField(max_length=20, blank=True)
    delivery_detail = models.CharField(max_length=500, blank=True)
    delivery_updated_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    message_id = models.CharField(max_length=250, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When a task is next expected to pick the row up (at creation, after the retry backoff, or
    # when it was last handed over); the redispatch hands over rows that are well past it.
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    # A sender claims the row (status "sending") until then; a claim that outlives it belonged to
    # a worker that died, and the row is tried again.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="dsr_email_status"),
            models.Index(fields=["status", "next_attempt_at"], name="dsr_email_due"),
            models.Index(fields=["message_id"], name="dsr_email_message_id"),
        ]

    def __str__(self):
        return f"{self.template} to {self.to} ({self.status})"


class ApiToken(AbstractAuthToken):
    """A staff API key (`Authorization: Token <key>`), django-rest-knox's token with a name and the
    time of last use. The database holds the key's SHA-512 digest and its first characters (to find
    the row, shown as the token's id), never the key. Every token expires; revoking deletes the row."""

    expiry = models.DateTimeField()
    name = models.CharField(max_length=64)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.token_key} ({self.name})"

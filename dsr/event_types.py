"""Every kind of event on a request's timeline and audit chain. The values are the strings stored
in `AuditEvent.event_type` and hashed into the chain, so they never change: a new kind gets a new
value. Events are built by the constructors in dsr.services.events, one per kind, with its data."""

from django.db import models


class EventType(models.TextChoices):
    # Intake
    RECEIVED = "received"
    VERIFICATION_NOT_REQUIRED = "verification_not_required"
    VERIFICATION_STARTED = "verification_started"
    ORGANISATION_NOT_FOUND = "organisation_not_found"
    FORWARDED_TO_ORGANISATION = "forwarded_to_organisation"
    DUPLICATE_RECEIVED = "duplicate_received"
    LINKED_AS_DUPLICATE = "linked_as_duplicate"
    DOCUMENT_RECEIVED = "document_received"
    REQUESTER_REPLIED = "requester_replied"
    # Verification
    VERIFICATION_LINK_SENT = "verification_link_sent"
    EMAIL_VERIFIED = "email_verified"
    IDENTITY_CHECKED = "identity_checked"
    TREATED_AS_CATEGORIES = "treated_as_categories"
    IDENTITY_REVIEW_REQUIRED = "identity_review_required"
    REAUTHENTICATION_FAILED = "reauthentication_failed"
    IDENTITY_DOCUMENT_DELETED = "identity_document_deleted"
    # The team's actions
    VERIFIED = "verified"
    APPROVED = "approved"
    INFORMATION_REQUESTED = "information_requested"
    COMPLETED = "completed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    REOPENED = "reopened"
    TEAM_MESSAGE = "team_message"
    INTERNAL_NOTE = "internal_note"
    ASSIGNED = "assigned"
    # The clock
    EXTENDED = "extended"
    CLOCK_RESUMED = "clock_resumed"
    ACKNOWLEDGEMENT_DUE = "acknowledgement_due"
    RESPONSE_DUE_SOON = "response_due_soon"
    OVERDUE = "overdue"
    # Delivery
    ACKNOWLEDGED = "acknowledged"
    FLAGGED = "flagged"
    # What the ESP's tracking webhook reported: "email_" and anymail's normalised event type.
    EMAIL_QUEUED = "email_queued"
    EMAIL_SENT = "email_sent"
    EMAIL_REJECTED = "email_rejected"
    EMAIL_FAILED = "email_failed"
    EMAIL_BOUNCED = "email_bounced"
    EMAIL_DEFERRED = "email_deferred"
    EMAIL_DELIVERED = "email_delivered"
    EMAIL_AUTORESPONDED = "email_autoresponded"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    EMAIL_COMPLAINED = "email_complained"
    EMAIL_UNSUBSCRIBED = "email_unsubscribed"
    EMAIL_SUBSCRIBED = "email_subscribed"
    EMAIL_UNKNOWN = "email_unknown"
    # Fulfilment (dsr/fulfilment/): the search across the business's systems and the access package
    FULFILMENT_STARTED = "fulfilment_started"
    FULFILMENT_SYSTEM_REQUESTED = "fulfilment_system_requested"
    FULFILMENT_SYSTEM_DONE = "fulfilment_system_done"
    FULFILMENT_SYSTEM_FAILED = "fulfilment_system_failed"
    FULFILMENT_SYSTEM_RETRIED = "fulfilment_system_retried"
    FULFILMENT_SYSTEM_SWITCHED_TO_MANUAL = "fulfilment_system_switched_to_manual"
    FULFILMENT_MANUAL_ANSWERED = "fulfilment_manual_answered"
    FULFILMENT_FINISHED = "fulfilment_finished"
    PACKAGE_BUILT = "package_built"
    PACKAGE_CODE_SENT = "package_code_sent"
    PACKAGE_DOWNLOADED = "package_downloaded"
    PACKAGE_PURGED = "package_purged"
    PACKAGE_REISSUED = "package_reissued"
    # Opt-outs: the requester's address went on the suppression list (its hash, never the address)
    SUPPRESSION_ADDED = "suppression_added"
    # Erasure (dsr/fulfilment/services/erasure.py): plan, approval, execution, verification, replay
    ERASURE_PLANNED = "erasure_planned"
    ERASURE_APPROVED = "erasure_approved"
    ERASURE_PLAN_CHANGED = "erasure_plan_changed"
    ERASURE_EXECUTED = "erasure_executed"
    ERASURE_VERIFIED = "erasure_verified"
    ERASURE_FAILED = "erasure_failed"
    ERASURE_REPLAYED = "erasure_replayed"
    # Corrections (dsr/fulfilment/services/corrections.py): current values read, the officer's
    # decisions, what was passed on to recipients (Art 19), the requester's statement (§7023(f))
    CORRECTION_VALUES_READ = "correction_values_read"
    CORRECTION_READ_FAILED = "correction_read_failed"
    CORRECTIONS_DECIDED = "corrections_decided"
    CORRECTIONS_PASSED_ON = "corrections_passed_on"
    CORRECTION_STATEMENT_RECEIVED = "correction_statement_received"
    # Instructions (dsr/fulfilment/services/instructions.py): a system told to erase, restrict,
    # opt out, limit or correct, and its confirmation
    INSTRUCTION_SENT = "instruction_sent"
    INSTRUCTION_CONFIRMED = "instruction_confirmed"
    INSTRUCTION_FAILED = "instruction_failed"
    # Written once by migration 0011 to seal each chain that existed before the chain was keyed.
    AUDIT_CHAIN_KEYED = "audit_chain_keyed"


# Written by no service today; kept so that existing rows still name a kind.
LEGACY_EVENT_TYPES = frozenset({EventType.AUDIT_CHAIN_KEYED})

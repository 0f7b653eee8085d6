"""Celery tasks: thin, idempotent, ids only. A redelivered task is a no-op."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from dsr.models import EmailStatus
from dsr.services.audit_checkpoints import audit_trail_verify, audit_verification_mail
from dsr.services.delivery import ACKNOWLEDGEMENT_TEMPLATE, request_acknowledgement_record, request_delivery_failed
from dsr.services.emails import SendResult, outbound_email_send, outbox_redispatch
from dsr.services.retention import retention_purge
from dsr.services.sweep import deadline_sweep as deadline_sweep_run

log = logging.getLogger(__name__)

# A send may not outlive its claim on the row (DSR_EMAIL_LEASE_SECONDS), or a second sender could
# take over while it still runs: the soft limit ends it as a failed attempt well before.
_LEASE = settings.DSR_EMAIL_LEASE_SECONDS


# After the email is recorded, the database briefly away: try the request's record again soon.
OUTCOME_RETRY_SECONDS = 30


def email_outcome_record(result: SendResult) -> None:
    """What a send means for its request, decided here and not in the outbox: the acknowledgement
    went out (§7021(a)), or an email to the requester failed for good (the request is flagged and
    the team told). Decided on the row's status, so a redelivered task that finds the row done
    completes what a crash cut short; both records are idempotent."""
    if not result.request_id:
        return
    if result.email_status == EmailStatus.SENT and result.template == ACKNOWLEDGEMENT_TEMPLATE:
        request_acknowledgement_record(request_id=result.request_id, email_id=result.email_id)
    elif result.email_status == EmailStatus.FAILED:
        request_delivery_failed(email_id=result.email_id, reason=result.error)


@shared_task(
    bind=True, max_retries=None, acks_late=True, soft_time_limit=max(10, _LEASE - 60), time_limit=max(15, _LEASE - 30)
)
def email_send(self, email_id: int) -> str:
    # The row counts the attempts (DSR_EMAIL_MAX_ATTEMPTS) and sets the backoff, whichever task
    # (first, retried or handed over again) tries it.
    result = outbound_email_send(email_id=email_id)
    if result.outcome == "retry":
        raise self.retry(countdown=result.retry_in)
    try:
        email_outcome_record(result)
    except (OperationalError, InterfaceError) as exc:
        # The email is recorded; the retried task finds it done and records the rest.
        raise self.retry(exc=exc, countdown=OUTCOME_RETRY_SECONDS) from exc
    return result.outcome


@shared_task
def deadline_sweep() -> dict:
    report = deadline_sweep_run()
    if report.fired:
        log.info("deadline sweep %s fired %d timers", report.today, len(report.fired))
    return {"today": report.today.isoformat(), "fired": len(report.fired)}


@shared_task
def outbox_redispatch_run() -> int:
    return outbox_redispatch()


@shared_task
def retention_purge_run() -> dict:
    report = retention_purge()
    return {"requests_purged": report.requests_purged, "identity_documents_deleted": report.identity_documents_deleted}


@shared_task
def audit_checkpoint_run() -> dict:
    """Daily: verify the audit trail and write a signed checkpoint outside the database."""
    result = audit_trail_verify(write_checkpoint=True)
    audit_verification_mail(result)
    for p in result.problems:
        log.error("audit trail: %s #%s: %s", p.reference or "-", p.seq, p.problem)
    return {
        "checked": result.checked,
        "problems": len(result.problems),
        "checkpoint": str(result.checkpoint_written or ""),
    }

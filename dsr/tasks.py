"""Celery tasks: thin, idempotent, ids only. A redelivered task is a no-op."""

import logging

from celery import shared_task

from dsr.services.emails import outbound_email_send, outbox_redispatch
from dsr.services.sweep import deadline_sweep as deadline_sweep_run

log = logging.getLogger(__name__)

RETRY_BACKOFF_SECONDS = (30, 120, 600, 1800, 3600)


@shared_task(bind=True, max_retries=len(RETRY_BACKOFF_SECONDS), acks_late=True)
def email_send(self, email_id: int) -> str:
    result = outbound_email_send(email_id=email_id)
    if result.outcome == "retry":
        countdown = RETRY_BACKOFF_SECONDS[min(self.request.retries, len(RETRY_BACKOFF_SECONDS) - 1)]
        raise self.retry(countdown=countdown)
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
    from dsr.services.retention import retention_purge

    report = retention_purge()
    return {"requests_purged": report.requests_purged, "identity_documents_deleted": report.identity_documents_deleted}


@shared_task
def audit_checkpoint_run() -> dict:
    """Daily: verify the audit trail and write a signed checkpoint outside the database."""
    from dsr.services.audit_checkpoints import audit_trail_verify, audit_verification_mail

    result = audit_trail_verify(write_checkpoint=True)
    audit_verification_mail(result)
    for p in result.problems:
        log.error("audit trail: %s #%s: %s", p.reference or "-", p.seq, p.problem)
    return {"checked": result.checked, "problems": len(result.problems),
            "checkpoint": str(result.checkpoint_written or "")}

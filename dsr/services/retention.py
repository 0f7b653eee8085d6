"""Retention (§7101, RULES.md §6): every request and its record are kept for at least 24 months
after closing, used for nothing else, then purged; what remains is an anonymous row for the
§7102 metrics. Identity documents go much sooner."""

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dsr import clock
from dsr.hooks import hooks_call
from dsr.models import (
    AuditEvent,
    ClockPause,
    ClosedRequestStat,
    DataSubjectRequest,
    OutboundEmail,
    RequestDocument,
    VerificationChallenge,
)
from dsr.services.audit import audit_chain_check, audit_tombstone_record
from dsr.services.documents import identity_documents_purge, stored_files_delete
from dsr.services.transitions import request_locked

BATCH = 200
log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    requests_purged: int = 0
    identity_documents_deleted: int = 0


def retention_cutoff(now: datetime) -> datetime:
    today = clock.local_date(now, settings.DSR_TIME_ZONE)
    cutoff_day = clock.add_months(today, -settings.DSR_RETENTION_MONTHS)
    return datetime.combine(cutoff_day, time.min, tzinfo=timezone.get_current_timezone())


def _stat_for(request: DataSubjectRequest) -> ClosedRequestStat:
    assert request.closed_at is not None  # only closed requests are purged
    received_on = clock.local_date(request.received_at, settings.DSR_TIME_ZONE)
    closed_on = clock.local_date(request.closed_at, settings.DSR_TIME_ZONE)
    return ClosedRequestStat(
        year=received_on.year,
        request_type=request.request_type,
        regime=request.regime,
        channel=request.channel,
        outcome=request.outcome,
        denial_reason=request.denial_reason,
        days_to_response=(closed_on - received_on).days,
        purged_at=timezone.now(),
    )


@transaction.atomic
def _request_purge(request_id: int, cutoff: datetime) -> bool:
    request = DataSubjectRequest.objects.select_for_update().filter(pk=request_id, closed_at__lt=cutoff).first()
    if request is None:
        return False
    # Only an intact chain is signed off: a broken one stays for whoever investigates it.
    problems = audit_chain_check(
        reference=request.reference,
        events=request.events.order_by("seq"),
        head_seq=request.audit_seq,
        head_hash=request.audit_head,
    )
    if problems:
        log.error("retention purge skipped %s: its audit chain is broken (%s)", request.reference, problems[0].problem)
        return False
    # The signed tombstone tells dsr_verify_audit that this request went by the purge.
    audit_tombstone_record(request=request)
    _stat_for(request).save(force_insert=True)
    storage = RequestDocument._meta.get_field("file").storage
    names = [n for n in request.documents.values_list("file", flat=True) if n]
    transaction.on_commit(lambda: stored_files_delete(storage, names))
    if connection.vendor == "postgresql":
        # The one way past the append-only trigger, for this transaction only.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL dsr.retention_purge = 'on'")
    DataSubjectRequest.objects.filter(duplicate_of=request).update(duplicate_of=None)
    hooks_call("request_purging", request.pk)  # fulfilment's runs, packages and ledger entry
    for model in (RequestDocument, VerificationChallenge, ClockPause, OutboundEmail, AuditEvent):
        model.objects.filter(request=request).delete()
    DataSubjectRequest.objects.filter(pk=request.pk).delete()
    return True


def identity_documents_expire(*, now: datetime) -> int:
    """Identity copies still held after DSR_ID_DOCUMENT_MAX_DAYS (no decision yet) are deleted."""
    limit = now - timedelta(days=settings.DSR_ID_DOCUMENT_MAX_DAYS)
    request_ids = set(
        RequestDocument.objects.filter(
            kind=RequestDocument.Kind.IDENTITY, deleted_at__isnull=True, uploaded_at__lt=limit
        ).values_list("request_id", flat=True)
    )
    deleted = 0
    for request_id in request_ids:
        with transaction.atomic():
            deleted += identity_documents_purge(request=request_locked(request_id))
    return deleted


def retention_purge(*, now: datetime | None = None) -> PurgeReport:
    now = now or timezone.now()
    cutoff = retention_cutoff(now)
    report = PurgeReport(identity_documents_deleted=identity_documents_expire(now=now))
    while True:
        ids = list(
            DataSubjectRequest.objects.filter(closed_at__lt=cutoff).order_by().values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            break
        purged = sum(_request_purge(request_id, cutoff) for request_id in ids)
        report.requests_purged += purged
        if not purged:
            break
    return report

"""The outbox: an email is a row written in the transaction that causes it, sent by a task after
commit. A redelivered task finds the row already sent and does nothing."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from dsr.models import DataSubjectRequest, EmailStatus, OutboundEmail

log = logging.getLogger(__name__)


def requester_status_url(request: DataSubjectRequest) -> str:
    return f"{settings.SITE_URL}/r/{request.public_token}/"


def email_render(*, template: str, language: str, context: dict) -> tuple[str, str]:
    base = {
        "business_name": settings.DSR_BUSINESS_NAME,
        "business_contact": settings.DSR_BUSINESS_CONTACT,
        "site_url": settings.SITE_URL,
    }
    base.update(context)
    with translation.override(language):
        subject = render_to_string(f"emails/{template}.subject.txt", base).strip().replace("\n", " ")
        body = render_to_string(f"emails/{template}.txt", base)
    return subject, body


def email_queue(
    *, template: str, to: str, language: str, context: dict, request: DataSubjectRequest | None = None
) -> OutboundEmail:
    """Write the email row and schedule its sending for after the surrounding commit."""
    subject, body = email_render(template=template, language=language, context=context)
    email = OutboundEmail.objects.create(
        request=request, template=template, language=language, to=to, subject=subject[:250], body_text=body
    )
    transaction.on_commit(lambda: email_dispatch(email_id=email.pk))
    return email


def email_dispatch(*, email_id: int) -> None:
    """Hand the email to the queue. If the broker is unreachable the row stays queued and
    `outbox_redispatch` hands it over again; the request that caused it is not failed for that."""
    from dsr.tasks import email_send

    try:
        email_send.delay(email_id)
    except Exception:
        log.exception("could not queue email %s; the outbox sweep will retry", email_id)


REDISPATCH_AFTER = timedelta(minutes=10)


def outbox_redispatch(*, now=None) -> int:
    """Queued emails never tried, older than a few minutes, lost their task (broker down or
    restarted): queue them again. Sending is idempotent, so a late original task does no harm."""
    now = now or timezone.now()
    stale = OutboundEmail.objects.filter(
        status=EmailStatus.QUEUED, attempts=0, created_at__lt=now - REDISPATCH_AFTER
    ).order_by()
    ids = list(stale.values_list("pk", flat=True)[:1000])
    for email_id in ids:
        email_dispatch(email_id=email_id)
    return len(ids)


def email_to_requester(*, request: DataSubjectRequest, template: str, context: dict | None = None) -> OutboundEmail:
    ctx = {"request": request, "status_url": requester_status_url(request)}
    ctx.update(context or {})
    return email_queue(template=template, to=request.email, language=request.language, context=ctx, request=request)


def staff_recipients() -> list[str]:
    if settings.DSR_ESCALATION_EMAILS:
        return list(settings.DSR_ESCALATION_EMAILS)
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    officers = users.filter(groups__permissions__codename="work_requests") | users.filter(is_superuser=True)
    return sorted(set(officers.values_list("email", flat=True)))


def email_to_staff(*, request: DataSubjectRequest, template: str, recipients: list[str], context: dict | None = None):
    ctx = {"request": request, "staff_url": f"{settings.SITE_URL}/staff/requests/{request.reference}/"}
    ctx.update(context or {})
    return [
        email_queue(template=template, to=to, language=settings.LANGUAGE_CODE, context=ctx, request=request)
        for to in recipients
    ]


@dataclass(frozen=True)
class SendResult:
    email_id: int
    outcome: str  # "sent", "already_done", "retry", "failed", "missing"
    error: str = ""


def outbound_email_send(*, email_id: int) -> SendResult:
    """Send one queued email. The row stays locked while the message goes out, so a redelivered
    task waits and then finds it sent; a crash mid-send rolls back to queued and is retried."""
    with transaction.atomic():
        email = OutboundEmail.objects.select_for_update().filter(pk=email_id).first()
        if email is None:
            return SendResult(email_id, "missing")
        if email.status != EmailStatus.QUEUED:
            return SendResult(email_id, "already_done")
        email.attempts += 1
        message = EmailMessage(
            subject=email.subject,
            body=email.body_text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[email.to],
            reply_to=[settings.DSR_BUSINESS_CONTACT],
        )
        try:
            message.send(fail_silently=False)
        except Exception as exc:  # any ESP/SMTP failure: record it, retry with backoff, then give up
            email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            final = email.attempts >= settings.DSR_EMAIL_MAX_ATTEMPTS
            email.status = EmailStatus.FAILED if final else EmailStatus.QUEUED
            email.save(update_fields=["attempts", "last_error", "status"])
            log.warning("email %s attempt %s failed: %s", email.pk, email.attempts, email.last_error)
            return SendResult(email_id, "failed" if final else "retry", email.last_error)
        status = getattr(message, "anymail_status", None)
        message_id = getattr(status, "message_id", None) if status else None
        email.message_id = str(message_id)[:250] if message_id else ""
        email.status = EmailStatus.SENT
        email.sent_at = timezone.now()
        email.save(update_fields=["attempts", "status", "sent_at", "message_id"])
        if email.template == "received" and email.request_id:
            from dsr.services.requests import request_acknowledgement_record

            request_acknowledgement_record(request_id=email.request_id, email=email)
    return SendResult(email_id, "sent")

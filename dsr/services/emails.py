"""The outbox: an email is a row written in the transaction that causes it, sent by a task after
commit. A redelivered task finds the row already sent and does nothing."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.context import make_context
from django.template.loader import get_template, render_to_string
from django.utils.html import format_html
from django.utils import timezone, translation

from dsr.models import DataSubjectRequest, EmailStatus, OutboundEmail
from dsr.services.audit import Actor, audit_event_record
from dsr.services.unsubscribe import unsubscribe_url

log = logging.getLogger(__name__)


def requester_status_url(request: DataSubjectRequest) -> str:
    return f"{settings.SITE_URL}/r/{request.public_token}/"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


# The product's own links: the only things an email turns into <a href>. Everything else in the
# context (above all what a requester typed) is escaped in the HTML part and never made a link.
PRODUCT_LINKS = ("status_url", "verify_url", "staff_url", "original_status_url", "form_url")


def _render_text(name: str, context: dict, *, autoescape: bool) -> str:
    template = get_template(name).template  # the engine's Template, so autoescape can be chosen
    return template.render(make_context(context, autoescape=autoescape))


def email_render(*, template: str, language: str, context: dict) -> RenderedEmail:
    """Subject, text and HTML parts in the given language, from one template so the two parts
    always say the same thing. The text part is rendered as plain text; the HTML part from the
    same template with autoescaping on, the product's links as the only anchors, in the layout."""
    base = {
        "business_name": settings.DSR_BUSINESS_NAME,
        "business_contact": settings.DSR_BUSINESS_CONTACT,
        "site_url": settings.SITE_URL,
        "form_url": f"{settings.SITE_URL}/",
    }
    base.update(context)
    links = {key: format_html('<a href="{0}">{0}</a>', base[key]) for key in PRODUCT_LINKS if base.get(key)}
    with translation.override(language):
        subject = " ".join(_render_text(f"emails/{template}.subject.txt", base, autoescape=False).split())
        # A plain str: the text part is not HTML and must never pass for safe HTML later.
        text = str.__str__(_render_text(f"emails/{template}.txt", base, autoescape=False))
        body = _render_text(f"emails/{template}.txt", {**base, **links}, autoescape=True)
        html = render_to_string("emails/_layout.html", {**base, "subject": subject, "body": body, "language": language})
    return RenderedEmail(subject, text, html)


def email_queue(
    *, template: str, to: str, language: str, context: dict, request: DataSubjectRequest | None = None,
    headers: dict | None = None,
) -> OutboundEmail:
    """Write the email row and schedule its sending for after the surrounding commit."""
    rendered = email_render(template=template, language=language, context=context)
    email = OutboundEmail.objects.create(
        request=request, template=template, language=language, to=to, subject=rendered.subject[:250],
        body_text=rendered.text, body_html=rendered.html, headers=headers or {},
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


def unsubscribe_headers(email: str) -> dict:
    """RFC 8058 one-click unsubscribe, on every email about marketing."""
    url = unsubscribe_url(email)
    return {
        "List-Unsubscribe": f"<{url}>, <mailto:{settings.DSR_BUSINESS_CONTACT}?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def email_to_requester(*, request: DataSubjectRequest, template: str, context: dict | None = None) -> OutboundEmail:
    ctx = {"request": request, "status_url": requester_status_url(request)}
    ctx.update(context or {})
    headers = unsubscribe_headers(request.email) if request.request_type == "opt_out_marketing" else None
    return email_queue(
        template=template, to=request.email, language=request.language, context=ctx, request=request, headers=headers
    )


def staff_recipients() -> list[str]:
    if settings.DSR_ESCALATION_EMAILS:
        return list(settings.DSR_ESCALATION_EMAILS)
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    officers = users.filter(groups__permissions__codename="work_requests") | users.filter(is_superuser=True)
    return sorted(set(officers.values_list("email", flat=True)))


def email_to_staff(*, request: DataSubjectRequest, template: str, recipients: list[str], context: dict | None = None):
    ctx = {"request": request, "staff_url": f"{settings.SITE_URL}/dashboard/requests/{request.reference}/"}
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
        message = EmailMultiAlternatives(
            subject=email.subject,
            body=email.body_text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[email.to],
            reply_to=[settings.DSR_BUSINESS_CONTACT],
            headers=email.headers or None,
        )
        if email.body_html:
            message.attach_alternative(email.body_html, "text/html")
        message.tags = [email.template]
        message.metadata = {"outbound_email_id": str(email.pk)}
        try:
            message.send(fail_silently=False)
        except Exception as exc:  # any ESP/SMTP failure: record it, retry with backoff, then give up
            email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            final = email.attempts >= settings.DSR_EMAIL_MAX_ATTEMPTS
            email.status = EmailStatus.FAILED if final else EmailStatus.QUEUED
            email.save(update_fields=["attempts", "last_error", "status"])
            log.warning("email %s attempt %s failed: %s", email.pk, email.attempts, email.last_error)
            if final:
                _delivery_failed(email, reason=email.last_error)
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


STAFF_TEMPLATES_PREFIX = "staff_"


def _delivery_failed(email: OutboundEmail, *, reason: str) -> None:
    """A requester's email could not be delivered: flag the request and tell the team (once;
    never about the team's own emails, which would only loop)."""
    if not email.request_id or email.template.startswith(STAFF_TEMPLATES_PREFIX) or email.to != email.request.email:
        return
    from dsr.services.requests import request_flag

    if request_flag(request_id=email.request_id, reason=f"Email '{email.template}' to the requester failed: {reason}"[:200],
                    data={"email_id": email.pk, "template": email.template}):
        request = DataSubjectRequest.objects.get(pk=email.request_id)
        # The team's email names the kind of failure only: the address and the provider's text
        # (which the receiving server, hence a requester, can write) are on the request page.
        failure = email.delivery_status if email.delivery_status in UNDELIVERABLE else "not accepted for sending"
        email_to_staff(request=request, template="staff_delivery_failed", recipients=staff_recipients(),
                       context={"failed": email, "failure": failure})


# anymail's normalised event types that mean the message will not arrive.
UNDELIVERABLE = {"bounced", "rejected", "failed", "complained"}


def delivery_event_record(*, message_id: str, event_type: str, recipient: str = "", description: str = "",
                          timestamp=None) -> OutboundEmail | None:
    """What the ESP reported through anymail's tracking webhook: delivered, bounced, complained…"""
    if not message_id:
        return None
    with transaction.atomic():
        email = OutboundEmail.objects.select_for_update(of=("self",)).select_related("request").filter(message_id=message_id).first()
        if email is None:
            log.info("tracking event %s for unknown message %s", event_type, message_id)
            return None
        email.delivery_status = event_type[:20]
        email.delivery_detail = (description or "")[:500]
        email.delivery_updated_at = timestamp or timezone.now()
        email.save(update_fields=["delivery_status", "delivery_detail", "delivery_updated_at"])
        if email.request_id:
            from dsr.services.requests import request_locked

            locked = request_locked(email.request_id)
            audit_event_record(
                request=locked, event_type=f"email_{event_type}"[:40], actor=Actor.system("email provider"),
                data={"email_id": email.pk, "template": email.template, "to": email.to, "detail": email.delivery_detail},
            )
        if event_type in UNDELIVERABLE:
            _delivery_failed(email, reason=f"{event_type}: {description}".strip(": "))
    return email

"""The outbox: an email is a row written in the transaction that causes it, sent by a task after
commit. Sending is claim-then-send: a short transaction claims the row for a lease, the message
goes out outside any transaction, a second short transaction records the outcome. A redelivered
task finds the row sent, or claimed by a live sender, and does nothing; a crash between the ESP's
acceptance and the record repeats at most that one message, once its lease has run out. The
outbox knows nothing of requests' states: it reports each attempt (SendResult), and its caller
records what that means for the request (dsr.services.delivery)."""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.template.context import make_context
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.html import format_html

from dsr.models import DataSubjectRequest, EmailStatus, OutboundEmail, SuppressionScope
from dsr.services.suppression import address_suppressed
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
PRODUCT_LINKS = ("status_url", "verify_url", "staff_url", "original_status_url", "form_url", "task_url")


def _render_text(name: str, context: dict, *, autoescape: bool) -> str:
    template = get_template(name).template  # type: ignore[attr-defined]  # the engine's Template, so autoescape can be chosen
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
    *,
    template: str,
    to: str,
    language: str,
    context: dict,
    request: DataSubjectRequest | None = None,
    headers: dict | None = None,
) -> OutboundEmail:
    """Write the email row and schedule its sending for after the surrounding commit."""
    rendered = email_render(template=template, language=language, context=context)
    email = OutboundEmail.objects.create(
        request=request,
        template=template,
        language=language,
        to=to,
        subject=rendered.subject[:250],
        body_text=rendered.text,
        body_html=rendered.html,
        headers=headers or {},
    )
    transaction.on_commit(lambda: email_dispatch(email_id=email.pk))
    return email


# After a failed publish this process leaves the broker alone for a while: each publish to a
# broker that is down costs up to half a second, and one request may queue several emails.
BROKER_PAUSE_SECONDS = 15
_broker_paused_until = 0.0

# The sending task, published by its registered name: dsr.tasks imports the outbox, never the
# reverse (dsr.apps imports the tasks at start-up, so the name is always registered).
EMAIL_SEND_TASK = "dsr.tasks.email_send"


def email_dispatch(*, email_id: int, force: bool = False) -> bool:
    """Hand the email to the queue. If the broker is unreachable the row stays queued and
    `outbox_redispatch` hands it over again; the request that caused it is not failed for that.
    Returns whether the task was published."""
    global _broker_paused_until
    if not force and time.monotonic() < _broker_paused_until:
        log.info("broker unavailable a moment ago; email %s waits for the outbox redispatch", email_id)
        return False
    try:
        current_app.tasks[EMAIL_SEND_TASK].delay(email_id)
    except Exception:  # kombu's OperationalError, redis errors, OSError: whatever the transport raises
        _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
        log.exception("could not queue email %s; the outbox redispatch will hand it over", email_id)
        return False
    return True


REDISPATCH_BATCH = 1000


def outbox_redispatch(*, now=None) -> int:
    """Hand over again the rows whose task is overdue — queued rows well past their next attempt
    (the broker was down or lost the task) and claims whose lease ran out (the worker died). Each
    is marked as handed over first, so it is not queued again before another interval; a late
    original task does no harm, the claim lets only one sender through."""
    now = now or timezone.now()
    overdue = now - timedelta(seconds=settings.DSR_EMAIL_REDISPATCH_SECONDS)
    stale = OutboundEmail.objects.filter(
        Q(status=EmailStatus.QUEUED, next_attempt_at__lt=overdue)
        | Q(status=EmailStatus.QUEUED, next_attempt_at__isnull=True, created_at__lt=overdue)
        | Q(status=EmailStatus.SENDING, lease_until__lt=now)
    ).order_by()
    ids = list(stale.values_list("pk", flat=True)[:REDISPATCH_BATCH])
    OutboundEmail.objects.filter(pk__in=ids).update(next_attempt_at=now)
    handed = 0
    for email_id in ids:
        if not email_dispatch(email_id=email_id, force=True):
            break  # the broker is still down: the rest wait for the next run
        handed += 1
    return handed


def unsubscribe_headers(email: str) -> dict:
    """RFC 8058 one-click unsubscribe, on every email about marketing."""
    url = unsubscribe_url(email)
    return {
        "List-Unsubscribe": f"<{url}>, <mailto:{settings.DSR_BUSINESS_CONTACT}?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def marketing_email_queue(*, template: str, to: str, language: str, context: dict) -> OutboundEmail | None:
    """The one door for marketing email (news, offers: anything not about a request the person
    made). Art 21(3): an address on the suppression list for marketing gets none — no row is
    written, None is returned. Every one that goes carries the one-click unsubscribe headers.
    The product itself sends no marketing today; an integration that does calls this."""
    if address_suppressed(email=to, scope=SuppressionScope.MARKETING):
        log.info("marketing email %s not queued: the address is on the suppression list", template)
        return None
    return email_queue(template=template, to=to, language=language, context=context, headers=unsubscribe_headers(to))


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
    """What one attempt did. The outbox only reports it; its caller (the email_send task) decides
    what it means for the request: an acknowledgement sent, or a flag for a failed email."""

    email_id: int
    outcome: str  # "sent", "already_done", "busy", "retry", "failed", "missing", "superseded"
    error: str = ""
    retry_in: int = 0  # seconds, for "retry"
    email_status: str = ""  # the row's status after the attempt, when the outcome settles it
    request_id: int | None = None
    template: str = ""


# Waits between failed sends: 30 s … 1 h, by attempt.
RETRY_BACKOFF_SECONDS = (30, 120, 600, 1800, 3600)
# Recording the outcome is tried again while the database is briefly away (a restart): the ESP
# has already answered, and a lost record would send the message again.
RECORD_RETRY_DELAYS = (0.5, 1, 2, 4, 8)


def outbox_key(email: OutboundEmail) -> str:
    """Stable for one outbox row, across every attempt; not guessable from the id alone."""
    return f"dsr-{email.pk}-{salted_hmac('dsr.outbox.key', str(email.pk)).hexdigest()[:16]}"


def outbox_message_id(email: OutboundEmail) -> str:
    """The same Message-ID on every attempt, so a receiver (and an ESP that keeps it) sees a
    repeat as the same message."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<{outbox_key(email)}@{domain}>"


# ESPs that de-duplicate on a key passed as a message header (Brevo: `idempotencyKey`, 15 minutes).
IDEMPOTENCY_HEADERS = {"brevo": "idempotencyKey", "sendinblue": "idempotencyKey"}


def _message_build(email: OutboundEmail) -> EmailMultiAlternatives:
    headers = {**(email.headers or {}), "Message-ID": outbox_message_id(email)}
    backend = settings.EMAIL_BACKEND
    if backend.startswith("anymail.backends."):
        idempotency_header = IDEMPOTENCY_HEADERS.get(backend.split(".")[2])
        if idempotency_header:
            headers[idempotency_header] = outbox_key(email)
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
        reply_to=[settings.DSR_BUSINESS_CONTACT],
        headers=headers,
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    # anymail passes these to the ESP, which returns them with each tracking event.
    message.tags = [email.template]  # type: ignore[attr-defined]  # anymail's extensions to Django's message
    message.metadata = {"outbound_email_id": str(email.pk)}  # type: ignore[attr-defined]
    return message


def _recorded(step, *args):
    """Run one short recording transaction, again after a reconnect while the database is away."""
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return step(*args)
        except (OperationalError, InterfaceError) as exc:
            if delay is None or connection.in_atomic_block:
                raise
            log.warning("recording an email outcome failed (%s); trying again in %s s", exc, delay)
            connection.close()
            time.sleep(delay)


@transaction.atomic
def _send_claim(email_id: int) -> OutboundEmail | SendResult:
    """Claim the row for one attempt: status sending, lease, attempt counted — committed before
    anything goes out."""
    now = timezone.now()
    email = OutboundEmail.objects.select_for_update().filter(pk=email_id).first()
    if email is None:
        return SendResult(email_id, "missing")
    if email.status in (EmailStatus.SENT, EmailStatus.FAILED):
        return SendResult(
            email_id,
            "already_done",
            email.last_error,
            email_status=email.status,
            request_id=email.request_id,
            template=email.template,
        )
    if email.status == EmailStatus.SENDING and email.lease_until and email.lease_until > now:
        return SendResult(email_id, "busy")  # another sender holds a live claim
    email.status = EmailStatus.SENDING
    email.attempts += 1
    email.lease_until = now + timedelta(seconds=settings.DSR_EMAIL_LEASE_SECONDS)
    email.save(update_fields=["status", "attempts", "lease_until"])
    return email


@transaction.atomic
def _sent_record(email_id: int, message_id: str) -> None:
    email = OutboundEmail.objects.select_for_update().get(pk=email_id)
    if email.status == EmailStatus.SENT:
        return
    # Recorded even if this claim had been taken over: the ESP accepted the message.
    email.status = EmailStatus.SENT
    email.sent_at = timezone.now()
    email.message_id = message_id
    email.lease_until = None
    email.save(update_fields=["status", "sent_at", "message_id", "lease_until"])


@transaction.atomic
def _failure_record(email_id: int, attempt: int, error: str) -> SendResult:
    email = OutboundEmail.objects.select_for_update().get(pk=email_id)
    if email.status != EmailStatus.SENDING or email.attempts != attempt:
        return SendResult(email_id, "superseded", error)  # a later claim owns the row now
    email.last_error = error
    email.lease_until = None
    final = email.attempts >= settings.DSR_EMAIL_MAX_ATTEMPTS
    retry_in = RETRY_BACKOFF_SECONDS[min(email.attempts, len(RETRY_BACKOFF_SECONDS)) - 1]
    if final:
        email.status = EmailStatus.FAILED
    else:
        email.status = EmailStatus.QUEUED
        email.next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
    email.save(update_fields=["last_error", "lease_until", "status", "next_attempt_at"])
    log.warning("email %s attempt %s failed: %s", email.pk, email.attempts, error)
    if final:
        return SendResult(
            email_id,
            "failed",
            error,
            email_status=EmailStatus.FAILED,
            request_id=email.request_id,
            template=email.template,
        )
    return SendResult(email_id, "retry", error, retry_in)


def outbound_email_send(*, email_id: int) -> SendResult:
    """Send one email: claim, send outside any transaction, record. Failed sends are retried
    with backoff and end as failed after DSR_EMAIL_MAX_ATTEMPTS."""
    claim = _send_claim(email_id)
    if isinstance(claim, SendResult):
        return claim
    message = _message_build(claim)
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # any ESP/SMTP failure (and the task's soft time limit): retry, then give up
        return _recorded(_failure_record, email_id, claim.attempts, f"{type(exc).__name__}: {exc}"[:2000])
    status = getattr(message, "anymail_status", None)
    message_id = getattr(status, "message_id", None) if status else None
    _recorded(_sent_record, email_id, str(message_id)[:250] if message_id else "")
    return SendResult(
        email_id, "sent", email_status=EmailStatus.SENT, request_id=claim.request_id, template=claim.template
    )


@transaction.atomic
def email_tracking_record(
    *, message_id: str, event_type: str, description: str = "", timestamp=None
) -> OutboundEmail | None:
    """What the ESP reported about one message through anymail's tracking webhook (delivered,
    bounced, complained…), on its row, which stays locked until the caller's transaction ends."""
    email = (
        OutboundEmail.objects.select_for_update(of=("self",))
        .select_related("request")
        .filter(message_id=message_id)
        .first()
    )
    if email is None:
        log.info("tracking event %s for unknown message %s", event_type, message_id)
        return None
    email.delivery_status = event_type[:20]
    email.delivery_detail = (description or "")[:500]
    email.delivery_updated_at = timestamp or timezone.now()
    email.save(update_fields=["delivery_status", "delivery_detail", "delivery_updated_at"])
    return email

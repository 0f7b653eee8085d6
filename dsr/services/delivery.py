"""What happens to a request's emails, recorded on the request: the acknowledgement went out
(§7021(a)), an email to the requester failed for good or bounced (the request is flagged and the
team told), and what the ESP's tracking webhook reported. The outbox (dsr.services.emails) only
sends and reports; the email_send task and the webhook's receiver call these."""

from django.db import transaction
from django.utils import timezone

from dsr.models import DataSubjectRequest, OutboundEmail
from dsr.services.audit import audit_event_record
from dsr.services.emails import email_to_staff, email_tracking_record, staff_recipients
from dsr.services.events import event_acknowledged, event_email_tracked, event_flagged
from dsr.services.transitions import request_locked

# §7021(a): the email that confirms receipt, queued by intake with the first transition.
ACKNOWLEDGEMENT_TEMPLATE = "received"
STAFF_TEMPLATES_PREFIX = "staff_"
# anymail's normalised event types that mean the message will not arrive.
UNDELIVERABLE = {"bounced", "rejected", "failed", "complained"}


@transaction.atomic
def request_acknowledgement_record(*, request_id: int, email_id: int) -> None:
    """The acknowledgement email went out (§7021(a)): stamp it once and stop the alert timer."""
    locked = request_locked(request_id)
    if locked.acknowledged_at:
        return
    email = OutboundEmail.objects.get(pk=email_id)
    locked.acknowledged_at = email.sent_at or timezone.now()
    locked.ack_alert_on = None
    locked.save(update_fields=["acknowledged_at", "ack_alert_on", "updated_at"])
    audit_event_record(
        request=locked, event=event_acknowledged(email_id=email.pk, to=email.to, acknowledge_by=locked.acknowledge_by)
    )


@transaction.atomic
def request_flag(*, request_id: int, reason: str, data: dict | None = None) -> bool:
    """Mark a request for the team's attention. Returns False when it was already flagged."""
    locked = request_locked(request_id)
    if locked.flagged_at:
        return False
    locked.flagged_at = timezone.now()
    locked.flag_reason = reason[:200]
    locked.save(update_fields=["flagged_at", "flag_reason", "updated_at"])
    audit_event_record(request=locked, event=event_flagged(reason=reason, data=data))
    return True


@transaction.atomic
def request_delivery_failed(*, email_id: int, reason: str) -> None:
    """A requester's email could not be delivered: flag the request and tell the team (once;
    never about the team's own emails, which would only loop)."""
    email = OutboundEmail.objects.select_related("request").get(pk=email_id)
    request = email.request
    if request is None or email.template.startswith(STAFF_TEMPLATES_PREFIX) or email.to != request.email:
        return
    if request_flag(
        request_id=request.pk,
        reason=f"Email '{email.template}' to the requester failed: {reason}"[:200],
        data={"email_id": email.pk, "template": email.template},
    ):
        request = DataSubjectRequest.objects.get(pk=request.pk)
        # The team's email names the kind of failure only: the address and the provider's text
        # (which the receiving server, hence a requester, can write) are on the request page.
        failure = email.delivery_status if email.delivery_status in UNDELIVERABLE else "not accepted for sending"
        email_to_staff(
            request=request,
            template="staff_delivery_failed",
            recipients=staff_recipients(),
            context={"failed": email, "failure": failure},
        )


def delivery_event_record(
    *, message_id: str, event_type: str, recipient: str = "", description: str = "", timestamp=None
) -> OutboundEmail | None:
    """What the ESP reported through anymail's tracking webhook: delivered, bounced, complained…"""
    if not message_id:
        return None
    with transaction.atomic():
        email = email_tracking_record(
            message_id=message_id, event_type=event_type, description=description, timestamp=timestamp
        )
        if email is None:
            return None
        if email.request_id:
            locked = request_locked(email.request_id)
            audit_event_record(
                request=locked,
                event=event_email_tracked(
                    tracking_type=event_type,
                    email_id=email.pk,
                    template=email.template,
                    to=email.to,
                    detail=email.delivery_detail,
                ),
            )
        if event_type in UNDELIVERABLE:
            request_delivery_failed(email_id=email.pk, reason=f"{event_type}: {description}".strip(": "))
    return email

"""anymail reports ESP tracking events through a Django signal; this adapter hands each one to
the one service that records it. No business logic lives here."""

from anymail.signals import tracking
from django.dispatch import receiver

from dsr.services.delivery import delivery_event_record


@receiver(tracking, dispatch_uid="dsr.delivery_event_record")
def anymail_tracking_received(sender, event, esp_name, **kwargs):
    delivery_event_record(
        message_id=event.message_id or "",
        event_type=event.event_type or "unknown",
        recipient=event.recipient or "",
        description=event.description or event.reject_reason or "",
        timestamp=event.timestamp,
    )

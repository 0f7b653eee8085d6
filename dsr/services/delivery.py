"""What the outbox's results mean for a request: the acknowledgement went out (§7021(a)), or the
request needs the team's attention (a flag)."""

from django.db import transaction
from django.utils import timezone

from dsr.services.audit import Actor, audit_event_record
from dsr.services.transitions import request_locked


@transaction.atomic
def request_acknowledgement_record(*, request_id: int, email) -> None:
    """The acknowledgement email went out (§7021(a)): stamp it once and stop the alert timer."""
    locked = request_locked(request_id)
    if locked.acknowledged_at:
        return
    locked.acknowledged_at = email.sent_at or timezone.now()
    locked.ack_alert_on = None
    locked.save(update_fields=["acknowledged_at", "ack_alert_on", "updated_at"])
    audit_event_record(
        request=locked,
        event_type="acknowledged",
        actor=Actor.system(),
        data={"email_id": email.pk, "to": email.to, "acknowledge_by": locked.acknowledge_by},
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
    audit_event_record(request=locked, event_type="flagged", actor=Actor.system(), data={"reason": reason, **(data or {})})
    return True

"""CCPA §1798.130(b) [policy]: no duty to answer more than two right-to-know requests in 12 months.
A third from the same verified person is answered with the rule, not a new access run;
corrections do not count (§7023(j)). `request_verify` asks this module and denies with its text."""

from datetime import timedelta

from dsr.models import DataSubjectRequest, Regime, RequestType, Status, email_key_of

CCPA_KNOW_TYPES = (RequestType.ACCESS, RequestType.ACCESS_SPECIFIC, RequestType.PORTABILITY)
KNOW_REQUESTS_PER_YEAR = 2

KNOW_LIMIT_MESSAGE = (
    "You have already received answers to two requests to know in the last 12 months. Under "
    "California law (Cal. Civ. Code §1798.130(b)) we are not required to answer more than two such "
    "requests in a 12-month period, so we will not run a new search now. You may ask again once 12 "
    "months have passed since your first request."
)


def know_limit_reached(request: DataSubjectRequest) -> bool:
    """True when this verified CCPA request to know is the third (or later) in 12 months from the
    same person: earlier verified ones received in the 365 days before it, duplicates and
    cancelled ones aside."""
    if request.regime != Regime.CCPA or request.request_type not in CCPA_KNOW_TYPES:
        return False
    since = request.received_at - timedelta(days=365)
    earlier = (
        DataSubjectRequest.objects.filter(
            email_key=email_key_of(request.email),
            regime=Regime.CCPA,
            request_type__in=CCPA_KNOW_TYPES,
            verified_at__isnull=False,
            received_at__gte=since,
            received_at__lt=request.received_at,
            duplicate_of__isnull=True,
        )
        .exclude(status__in=(Status.CANCELLED,))
        .count()
    )
    return earlier >= KNOW_REQUESTS_PER_YEAR

"""Reads. Views and the API ask these for querysets; nothing here writes."""

from django.db.models import Q, QuerySet

from dsr.deadlines import business_today
from dsr.models import OPEN_STATUSES, ApiToken, DataSubjectRequest, Suppression, email_key_of


def requests_list(*, filters: dict | None = None) -> QuerySet[DataSubjectRequest]:
    filters = filters or {}
    qs = DataSubjectRequest.objects.all().order_by("respond_by", "id")
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("type"):
        qs = qs.filter(request_type=filters["type"])
    if filters.get("regime"):
        qs = qs.filter(regime=filters["regime"])
    if filters.get("overdue") is True:
        qs = qs.filter(status__in=OPEN_STATUSES, respond_by__lt=business_today())
    elif filters.get("overdue") is False:
        qs = qs.exclude(status__in=OPEN_STATUSES, respond_by__lt=business_today())
    return _search(qs, filters.get("search"))


def _search(qs, text: str | None):
    """Reference or email exactly (any case), or a piece of the name."""
    text = (text or "").strip()
    if not text:
        return qs
    return qs.filter(Q(reference__iexact=text) | Q(email_key=email_key_of(text)) | Q(full_name__icontains=text))


def request_detail(*, reference: str) -> DataSubjectRequest:
    return (
        DataSubjectRequest.objects.select_related("assignee")
        .prefetch_related("events", "emails", "documents")
        .get(reference=reference)
    )


def request_by_token(*, token: str) -> DataSubjectRequest | None:
    if not token or len(token) > 64:
        return None
    return DataSubjectRequest.objects.prefetch_related("events").filter(public_token=token).first()


QUEUE_SORTS = {
    "due": ("respond_by", "id"),
    "-due": ("-respond_by", "-id"),
    "received": ("received_at", "id"),
    "-received": ("-received_at", "-id"),
    "reference": ("reference",),
}


def queue_requests(*, filters: dict, user) -> QuerySet[DataSubjectRequest]:
    """The dashboard queue: every filter is a plain indexed predicate; one query per page."""
    from datetime import timedelta

    today = business_today()
    qs = DataSubjectRequest.objects.select_related("assignee")
    status = filters.get("status") or "open"
    if status == "open":
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif status != "all":
        qs = qs.filter(status=status)
    for field, key in (("request_type", "type"), ("regime", "regime"), ("channel", "channel")):
        if filters.get(key):
            qs = qs.filter(**{field: filters[key]})
    assignee = filters.get("assignee")
    if assignee == "me":
        qs = qs.filter(assignee=user)
    elif assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee:
        qs = qs.filter(assignee__username=assignee)
    if filters.get("due_within") is not None:
        qs = qs.filter(status__in=OPEN_STATUSES, respond_by__lte=today + timedelta(days=filters["due_within"]))
    if filters.get("overdue"):
        qs = qs.filter(status__in=OPEN_STATUSES, respond_by__lt=today)
    if filters.get("flagged"):
        qs = qs.filter(flagged_at__isnull=False)
    qs = _search(qs, filters.get("q"))
    return qs.order_by(*QUEUE_SORTS.get(filters.get("sort") or "due", QUEUE_SORTS["due"]))


def queue_counts(*, user) -> dict:
    """The numbers on the queue's tabs, in one query."""
    from datetime import timedelta

    from django.db.models import Count

    today = business_today()
    open_q = Q(status__in=OPEN_STATUSES)
    return DataSubjectRequest.objects.aggregate(
        open=Count("pk", filter=open_q),
        overdue=Count("pk", filter=open_q & Q(respond_by__lt=today)),
        due_7=Count("pk", filter=open_q & Q(respond_by__gte=today, respond_by__lte=today + timedelta(days=7))),
        mine=Count("pk", filter=open_q & Q(assignee=user)),
        unassigned=Count("pk", filter=open_q & Q(assignee__isnull=True)),
        flagged=Count("pk", filter=Q(flagged_at__isnull=False) & open_q),
        awaiting_verification=Count("pk", filter=Q(status="awaiting_verification")),
        all=Count("pk"),
    )


def request_for_dashboard(*, reference: str) -> DataSubjectRequest:
    return (
        DataSubjectRequest.objects.select_related("assignee", "organisation", "duplicate_of")
        .prefetch_related("events__actor", "emails", "documents", "pauses")
        .get(reference=reference)
    )


def api_tokens_of(*, user) -> QuerySet:
    """A user's own API tokens, newest first (never anyone else's)."""
    return ApiToken.objects.filter(user=user).order_by("-created")


def suppressions_list(*, scope: str = "", since=None) -> QuerySet[Suppression]:
    """The suppression list, oldest first: a stable order for paging, and a reader that keeps its
    own copy asks only for what was added `since` its last read."""
    qs = Suppression.objects.order_by("created_at", "id")
    if scope:
        qs = qs.filter(scope=scope)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    return qs

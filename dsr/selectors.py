"""Reads. Views and the API ask these for querysets; nothing here writes."""

from django.db.models import Q, QuerySet

from dsr.models import OPEN_STATUSES, DataSubjectRequest
from dsr.services.requests import business_today


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
    search = (filters.get("search") or "").strip()
    if search:
        qs = qs.filter(Q(reference__iexact=search) | Q(email__iexact=search) | Q(full_name__icontains=search))
    return qs


def request_detail(*, reference: str) -> DataSubjectRequest:
    return (
        DataSubjectRequest.objects.select_related("assignee").prefetch_related("events", "emails", "documents")
        .get(reference=reference)
    )


def request_by_token(*, token: str) -> DataSubjectRequest | None:
    if not token or len(token) > 64:
        return None
    return DataSubjectRequest.objects.prefetch_related("events").filter(public_token=token).first()

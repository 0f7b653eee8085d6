"""Retention: 24 months after closing a request goes, its figures stay; ID copies go sooner."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from dsr.models import AuditEvent, ClosedRequestStat, DataSubjectRequest, OutboundEmail, RequestDocument
from dsr.services.intake import IntakeDetails
from dsr.services.retention import retention_purge
from tests.factories import PNG, request_create, request_denied_create

pytestmark = pytest.mark.django_db


def test_purge_after_24_months_keeps_only_the_figures(officer, django_capture_on_commit_callbacks):
    old = request_denied_create(officer=officer, email="old@example.org")
    recent = request_denied_create(officer=officer, email="recent@example.org")
    still_open = request_create(email="open@example.org")
    now = timezone.now()
    DataSubjectRequest.objects.filter(pk=old.pk).update(
        received_at=now - timedelta(days=2 * 365 + 25), closed_at=now - timedelta(days=2 * 365 + 5)
    )
    DataSubjectRequest.objects.filter(pk=recent.pk).update(
        received_at=now - timedelta(days=720), closed_at=now - timedelta(days=700)
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = retention_purge(now=now)
    assert report.requests_purged == 1
    assert set(DataSubjectRequest.objects.values_list("email", flat=True)) == {"recent@example.org", "open@example.org"}
    assert not AuditEvent.objects.filter(request_id=old.pk).exists()
    assert not OutboundEmail.objects.filter(to="old@example.org").exists()
    stat = ClosedRequestStat.objects.get()
    assert (stat.request_type, stat.regime, stat.outcome, stat.denial_reason) == (
        "access",
        "ccpa",
        "denied",
        "unverifiable",
    )
    assert abs(stat.days_to_response - 20) <= 1  # local dates: a DST change may move one by an hour
    assert "old@example.org" not in str(stat.__dict__)
    assert retention_purge(now=now).requests_purged == 0  # a second run finds nothing
    assert still_open.pk in DataSubjectRequest.objects.values_list("pk", flat=True)


def test_identity_copies_never_outlive_their_limit(settings, tmp_path, django_capture_on_commit_callbacks):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(intake=IntakeDetails(documents=(("identity", SimpleUploadedFile("id.png", PNG)),)))
    RequestDocument.objects.filter(request=r).update(
        uploaded_at=timezone.now() - timedelta(days=settings.DSR_ID_DOCUMENT_MAX_DAYS + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = retention_purge()
    assert report.identity_documents_deleted == 1
    assert not list(tmp_path.rglob("*.png"))
    assert r.events.filter(event_type="identity_document_deleted").exists()


@pytest.mark.postgres
def test_purge_passes_the_append_only_trigger_but_nothing_else_does(officer):
    from django.db import DatabaseError, transaction

    old = request_denied_create(officer=officer, email="pg-old@example.org")
    DataSubjectRequest.objects.filter(pk=old.pk).update(
        received_at=timezone.now() - timedelta(days=810), closed_at=timezone.now() - timedelta(days=800)
    )
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            AuditEvent.objects.filter(request=old).delete()
    assert retention_purge().requests_purged == 1
    assert not AuditEvent.objects.filter(request_id=old.pk).exists()

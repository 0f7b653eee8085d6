"""The retention purge reaches requests that went through fulfilment: after the retention period a
closed request's runs, system rows, owners' tasks, packages (and their files), download codes and
erasure ledger entry go with it — none of them blocks the purge or outlives the request."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dsr.fulfilment.models import AccessPackage, DownloadCode, ErasureLedgerEntry, FulfilmentRun, SystemRun
from dsr.fulfilment.results import held_path
from dsr.fulfilment.services import erasure
from dsr.models import DataSubjectRequest
from dsr.services.audit import Actor
from dsr.services.retention import retention_purge
from tests.fulfilment.erasure_fakes import erasing_systems, run_queued  # noqa: F401
from tests.fulfilment.packaging import package_systems, request_packaged  # noqa: F401
from tests.fulfilment.test_erasure_runs import _approve, _planned

pytestmark = pytest.mark.django_db


def _age(req, days):
    now = timezone.now()
    DataSubjectRequest.objects.filter(pk=req.pk).update(
        received_at=now - timedelta(days=days + 20), closed_at=now - timedelta(days=days)
    )


def test_an_erased_request_past_retention_is_purged_with_its_run_and_ledger_entry(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erasure_answer_send(request=req, actor=Actor.staff(officer))
    assert ErasureLedgerEntry.objects.filter(run=run).exists()
    _age(req, 2 * 365 + 5)
    with django_capture_on_commit_callbacks(execute=True):
        report = retention_purge()
    assert report.requests_purged == 1
    assert not DataSubjectRequest.objects.filter(pk=req.pk).exists()
    assert not FulfilmentRun.objects.exists() and not SystemRun.objects.exists()
    assert not ErasureLedgerEntry.objects.exists()


def test_a_packaged_request_past_retention_is_purged_with_its_package_file_and_codes(
    officer, package_systems, django_capture_on_commit_callbacks
):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    name = package.file_name
    assert name and held_path(name).exists()
    recent, _ = request_packaged(officer, django_capture_on_commit_callbacks, email="recent@example.com")
    _age(req, 2 * 365 + 5)
    _age(recent, 300)
    with django_capture_on_commit_callbacks(execute=True):
        report = retention_purge()
    assert report.requests_purged == 1
    assert not AccessPackage.objects.filter(pk=package.pk).exists()
    assert not DownloadCode.objects.filter(package_id=package.pk).exists()
    assert not held_path(name).exists()
    assert list(FulfilmentRun.objects.values_list("request_id", flat=True)) == [recent.pk]  # the recent one stays

"""Intake rules of the public side: routing, duplicates, agents, documents, abuse limits, GPC."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.utils import timezone

from dsr.errors import InvalidInput
from dsr.models import AuditEvent, DataSubjectRequest, Organisation, OutboundEmail, RequestDocument, Status
from dsr.services.audit import Actor
from dsr.services.intake import IntakeDetails
from dsr.services.staff_actions import request_approve, request_complete, request_verify
from tests.factories import PDF, PNG, request_create

pytestmark = pytest.mark.django_db


def _form(**overrides):
    data = {
        "request_type": "access",
        "regime": "ccpa",
        "relationship": "customer",
        "email": "form@example.org",
        "full_name": "Form Person",
        "access_period": "12_months",
    }
    data.update(overrides)
    return data


def test_organisation_user_is_forwarded_to_the_administrator(django_capture_on_commit_callbacks, mailoutbox):
    Organisation.objects.create(name="Acme", email_domain="acme.example", admin_contact_email="admin@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(email="worker@ACME.example", intake=IntakeDetails(relationship="org_user"))
    assert r.status == Status.FORWARDED and r.organisation.name == "Acme"
    assert r.closed_at is not None and r.remind_on is None
    recipients = sorted(m.to[0] for m in mailoutbox)
    assert recipients == ["admin@acme.example", "worker@ACME.example"]
    admin_mail = next(m for m in mailoutbox if m.to == ["admin@acme.example"])
    assert r.reference in admin_mail.subject and "worker@ACME.example" in admin_mail.body


def test_organisation_user_with_unknown_domain_is_handled_by_us():
    r = request_create(email="someone@unknown.example", intake=IntakeDetails(relationship="org_user"))
    assert r.status == Status.AWAITING_VERIFICATION
    assert r.events.filter(event_type="organisation_not_found").exists()


def test_same_open_request_is_linked_not_a_second_clock(django_capture_on_commit_callbacks, mailoutbox):
    first = request_create(email="dup@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        second = request_create(email="DUP@example.org")
    assert second.status == Status.CANCELLED and second.duplicate_of_id == first.pk
    assert (second.remind_on, second.overdue_on) == (None, None)
    assert first.events.filter(event_type="duplicate_received", data__reference=second.reference).exists()
    assert first.reference in mailoutbox[-1].body and f"/r/{first.public_token}/" in mailoutbox[-1].body
    other_type = request_create(email="dup@example.org", request_type="erasure")
    assert other_type.duplicate_of is None and other_type.status == Status.AWAITING_VERIFICATION


def test_ccpa_third_request_to_know_in_twelve_months_is_answered_with_the_rule(
    officer, django_capture_on_commit_callbacks, mailoutbox
):
    staff = Actor.staff(officer)
    for days_ago in (200, 100):
        r = request_create(email="know@example.org", received_at=timezone.now() - timedelta(days=days_ago))
        r = request_verify(request=r, actor=staff, note="ok")
        request_approve(request=r, actor=staff)
        request_complete(request=r, actor=staff, message="Here you are.")
    with django_capture_on_commit_callbacks(execute=True):
        third = request_create(email="know@example.org")
        third = request_verify(request=third, actor=staff, note="ok")
    assert third.status == Status.DENIED and third.denial_reason == "excessive"
    assert "1798.130(b)" in mailoutbox[-1].body
    # A correction does not count (§7023(j)), nor does a GDPR request.
    fix = request_create(email="know@example.org", request_type="rectification")
    assert request_verify(request=fix, actor=staff, note="ok").status == Status.VERIFIED
    eu = request_create(email="know@example.org", regime="gdpr")
    assert request_verify(request=eu, actor=staff, note="ok").status == Status.VERIFIED


def test_agent_needs_permission_or_power_of_attorney():
    with pytest.raises(InvalidInput) as err:
        request_create(intake=IntakeDetails(agent_name="Ann Agent", agent_email="agent@example.org"))
    assert err.value.field == "agent_document"
    r = request_create(
        intake=IntakeDetails(agent_name="Ann Agent", agent_email="agent@example.org", agent_power_of_attorney=True)
    )
    assert r.agent_power_of_attorney and r.agent_email == "agent@example.org"
    assert r.events.get(event_type="received").data["agent"] is True


def test_documents_are_checked_by_content_and_stored_privately(settings, tmp_path, django_capture_on_commit_callbacks):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    disguised = SimpleUploadedFile("permission.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf")
    with pytest.raises(InvalidInput, match="PDF, PNG or JPEG"):
        request_create(
            intake=IntakeDetails(
                agent_name="A", agent_email="a@example.org", documents=(("agent_authorisation", disguised),)
            )
        )
    settings.DSR_UPLOAD_MAX_BYTES = 10
    with pytest.raises(InvalidInput, match="too large"):
        request_create(intake=IntakeDetails(documents=(("evidence", SimpleUploadedFile("a.pdf", PDF)),)))
    settings.DSR_UPLOAD_MAX_BYTES = 1024 * 1024
    assert DataSubjectRequest.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(
            intake=IntakeDetails(
                agent_name="A",
                agent_email="a@example.org",
                documents=(("agent_authorisation", SimpleUploadedFile("p.pdf", PDF)),),
            )
        )
    doc = RequestDocument.objects.get(request=r)
    assert doc.content_type == "application/pdf" and doc.size == len(PDF)
    stored = tmp_path / doc.file.name
    assert stored.read_bytes() == PDF
    assert "static" not in str(stored) and str(settings.STATIC_ROOT) not in str(stored)


def test_identity_documents_are_deleted_once_decided(officer, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(intake=IntakeDetails(documents=(("identity", SimpleUploadedFile("id.png", PNG)),)))
    doc = RequestDocument.objects.get(request=r)
    path = tmp_path / doc.file.name
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        request_verify(request=r, actor=Actor.staff(officer), note="ID checked against the passport photo")
    doc.refresh_from_db()
    assert doc.deleted_at is not None and not doc.file and not path.exists()
    assert r.events.get(event_type="identity_document_deleted").data["note"] == "ID checked; copy deleted"


def test_honeypot_answers_like_success_and_records_nothing(client):
    res = client.post("/", _form(website="http://spam.example"))
    assert res.status_code == 302 and res["Location"] == "/submitted/"
    assert DataSubjectRequest.objects.count() == 0
    assert "What happens next" in client.get("/submitted/").content.decode()


def test_form_rate_limit_per_email(client, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "form_email": "2/hour"}
    for i in range(2):
        assert client.post("/", _form(request_type=["access", "erasure"][i])).status_code == 302
    res = client.post("/", _form(request_type="objection"))
    assert res.status_code == 429 and int(res["Retry-After"]) > 0
    assert "try again" in res.content.decode()
    assert DataSubjectRequest.objects.count() == 2


def test_gpc_signal_is_an_opt_out_with_nothing_more(client):
    page = client.get("/", HTTP_SEC_GPC="1")
    assert 'id="gpc-notice"' in page.content.decode()
    assert 'id="gpc-notice"' not in client.get("/").content.decode()
    client.post("/", _form(request_type="erasure"), HTTP_SEC_GPC="1")
    types = dict(DataSubjectRequest.objects.values_list("request_type", "gpc_signal"))
    assert types == {"erasure": True, "opt_out_sale": True}
    opt_out = DataSubjectRequest.objects.get(request_type="opt_out_sale")
    assert opt_out.status == Status.IN_PROGRESS  # no verification (§7025, §7060(b))


@pytest.mark.parametrize(
    "failure", [OperationalError("the database went away"), InvalidInput("refused")], ids=["database", "service"]
)
def test_a_gpc_submission_and_its_opt_out_are_stored_together_or_not_at_all(client, monkeypatch, failure):
    """Before: the form's request was kept when recording the GPC opt-out after it failed, and the
    person's retry made a duplicate of it."""
    save = DataSubjectRequest.save

    def opt_out_insert_fails(self, *args, **kwargs):
        if self._state.adding and self.request_type == "opt_out_sale":
            raise failure
        return save(self, *args, **kwargs)

    monkeypatch.setattr(DataSubjectRequest, "save", opt_out_insert_fails)
    if isinstance(failure, OperationalError):
        with pytest.raises(OperationalError):
            client.post("/", _form(request_type="erasure"), HTTP_SEC_GPC="1")
    else:
        assert client.post("/", _form(request_type="erasure"), HTTP_SEC_GPC="1").status_code == 400
    assert not DataSubjectRequest.objects.exists()
    assert not AuditEvent.objects.exists() and not OutboundEmail.objects.exists()
    monkeypatch.undo()
    assert client.post("/", _form(request_type="erasure"), HTTP_SEC_GPC="1").status_code == 302  # the retry
    rows = DataSubjectRequest.objects.values_list("request_type", "duplicate_of")
    assert sorted(rows) == [("erasure", None), ("opt_out_sale", None)]


def test_corrections_field_by_field_from_the_form(client):
    res = client.post(
        "/",
        _form(
            request_type="rectification",
            correction_0_field="postal_code",
            correction_0_wrong="94103",
            correction_0_correct="94110",
        ),
    )
    assert res.status_code == 302
    r = DataSubjectRequest.objects.get()
    assert r.corrections == [{"field": "postal_code", "wrong": "94103", "correct": "94110"}]
    bad = client.post("/", _form(request_type="rectification", email="b@example.org", correction_0_wrong="x"))
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "Choose what is wrong" in html and "Say what it should be" in html
    assert 'value="x"' in html  # nothing typed is lost


def test_agent_from_the_form_with_signed_permission(client, settings, tmp_path):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    data = _form(is_agent="on", agent_name="Ann Agent", agent_email="agent@example.org")
    missing = client.post("/", data)
    assert missing.status_code == 400 and "signed permission" in missing.content.decode()
    data["agent_document"] = SimpleUploadedFile("permission.pdf", PDF, content_type="application/pdf")
    assert client.post("/", data).status_code == 302
    r = DataSubjectRequest.objects.get()
    assert r.agent_name == "Ann Agent" and r.documents.get().kind == "agent_authorisation"


def test_access_period_since_2022(client):
    client.post("/", _form(access_period="since_2022"))
    assert DataSubjectRequest.objects.get().access_period == "since_2022"


def test_no_email_goes_out_when_the_form_fails(client, mailoutbox):
    client.post("/", _form(email="broken"))
    assert OutboundEmail.objects.count() == 0 and mailoutbox == []


def test_documents_reach_only_privacy_staff(
    client, officer, settings, tmp_path, django_capture_on_commit_callbacks, django_user_model
):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(
            intake=IntakeDetails(
                agent_name="A",
                agent_email="a@example.org",
                documents=(("agent_authorisation", SimpleUploadedFile("p.pdf", PDF)),),
            )
        )
    doc = r.documents.get()
    url = f"/staff/requests/{r.reference}/documents/{doc.pk}/"
    assert client.get(url).status_code == 302  # to the login page
    django_user_model.objects.create_user("plain", "plain@example.org", "pw-long-enough-1")
    client.login(username="plain", password="pw-long-enough-1")
    assert client.get(url).status_code == 403
    client.login(username="olivia", password="correct horse battery")
    res = client.get(url)
    assert res.status_code == 200 and b"".join(res.streaming_content) == PDF
    assert res["Content-Type"] == "application/pdf" and "attachment" in res["Content-Disposition"]
    assert client.get(f"/staff/requests/DSR-1999-000001/documents/{doc.pk}/").status_code == 404
    assert "p.pdf" in client.get(f"/dashboard/requests/{r.reference}/").content.decode()


@pytest.mark.parametrize(
    "received_at", ["0001-01-01T00:00:00Z", "1999-12-31T23:00:00+00:00", "2018-05-24T12:00:00+00:00"]
)
def test_staff_recorded_requests_cannot_predate_the_gdpr(staff_api, received_at):
    res = staff_api.post(
        "/api/v1/staff/requests/",
        {
            "type": "access",
            "regime": "gdpr",
            "email": "old@example.org",
            "channel": "mail",
            "received_at": received_at,
        },
        format="json",
    )
    assert res.status_code == 400 and res["Content-Type"].startswith("application/problem+json")
    assert res.json()["errors"] == {
        "received_at": ["received_at cannot be before 25 May 2018, when the GDPR began to apply."]
    }
    assert not DataSubjectRequest.objects.filter(email="old@example.org").exists()

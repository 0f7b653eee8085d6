"""A requester's file is stored and served under a name the product makes, with the extension of
the type its content was checked to be; the name the sender gave is shown to staff as escaped
information only."""

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from dsr.models import RequestDocument
from dsr.services.intake import IntakeDetails
from dsr.services.staff_actions import request_information_ask
from tests.factories import JPEG, PDF, PNG, request_create

pytestmark = pytest.mark.django_db

HOSTILE_NAMES = [
    ("evil.html", PDF, "pdf", "application/pdf"),
    ("run.exe", PNG, "png", "image/png"),
    ("../../../../etc/passwd", JPEG, "jpg", "image/jpeg"),
    ("..\\..\\windows\\system32\\evil.bat", PDF, "pdf", "application/pdf"),
    ("invoice\u202efdp.exe", PDF, "pdf", "application/pdf"),  # reads as "invoiceexe.pdf"
    ("<script>alert(1)</script>.pdf", PDF, "pdf", "application/pdf"),
    ('résumé 東京 "quoted"; filename=x.html\r\nX-Evil: 1.pdf', PNG, "png", "image/png"),
    ("a" * 600 + ".pdf", PDF, "pdf", "application/pdf"),
    ("\u202e\x07", JPEG, "jpg", "image/jpeg"),  # nothing readable left
]


@pytest.fixture
def officer_client(client, officer, settings, tmp_path):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    client.login(username="olivia", password="correct horse battery")
    return client


@pytest.mark.parametrize(
    "name,content,ext,content_type", HOSTILE_NAMES, ids=[f"name{i}" for i in range(len(HOSTILE_NAMES))]
)
def test_downloads_use_a_generated_name_and_the_checked_type(
    officer_client, settings, django_capture_on_commit_callbacks, name, content, ext, content_type
):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(
            request_type="rectification",
            intake=IntakeDetails(
                corrections=({"field": "postal_code", "wrong": "1", "correct": "2"},),
                documents=(("evidence", SimpleUploadedFile(name, content, content_type="text/html")),),
            ),
        )
    doc = r.documents.get()
    res = officer_client.get(f"/staff/requests/{r.reference}/documents/{doc.pk}/")
    assert res.status_code == 200 and b"".join(res.streaming_content) == content
    assert res["Content-Type"] == content_type  # never the sender's word (text/html here)
    assert res["Content-Disposition"] == f'attachment; filename="{r.reference}-evidence-{doc.pk}.{ext}"'
    assert res["X-Content-Type-Options"] == "nosniff"
    # Stored under a random name with the checked extension, inside the private folder.
    assert re.fullmatch(rf"requests/\d{{4}}/\d{{2}}/[0-9a-f]{{32}}\.{ext}", doc.file.name)
    stored = Path(settings.DSR_PRIVATE_FILES_DIR, doc.file.name).resolve()
    assert stored.is_file() and Path(settings.DSR_PRIVATE_FILES_DIR).resolve() in stored.parents
    # The sender's name is information: no folders, no control or bidi characters, short, escaped.
    assert "/" not in doc.original_name and "\\" not in doc.original_name and len(doc.original_name) <= 120
    assert not re.search("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]", doc.original_name)
    page = officer_client.get(f"/dashboard/requests/{r.reference}/").content.decode()
    assert f">{r.reference}-evidence-{doc.pk}.{ext}</a>" in page
    assert "<script>alert" not in page and "script>.pdf" not in page
    if doc.original_name:
        assert f"sent as “{escape(doc.original_name)}”" in page


def test_files_sent_through_the_form_and_the_status_page_get_generated_names(
    client, officer, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(
            "/",
            {
                "request_type": "access",
                "regime": "ccpa",
                "relationship": "customer",
                "email": "f@example.org",
                "is_agent": "on",
                "agent_name": "Ann",
                "agent_email": "ann@example.org",
                "agent_document": SimpleUploadedFile("../permission.html", PDF, content_type="text/html"),
            },
        )
    assert res.status_code == 302
    doc = RequestDocument.objects.get()
    client.login(username="olivia", password="correct horse battery")
    download = client.get(f"/staff/requests/{doc.request.reference}/documents/{doc.pk}/")
    assert (
        download["Content-Disposition"]
        == f'attachment; filename="{doc.request.reference}-agent-authorisation-{doc.pk}.pdf"'
    )
    assert download["Content-Type"] == "application/pdf"

    from dsr.services.audit import Actor

    r = request_create(email="id@example.org", request_type="access_specific")
    request_information_ask(request=r, actor=Actor.staff(officer), message="Send a copy of your ID.", id_document=True)
    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        ok = client.post(
            f"/r/{r.public_token}/",
            {
                "action": "reply",
                "message": "",
                "document": SimpleUploadedFile("id.exe", PNG, content_type="application/x-msdownload"),
            },
        )
    assert ok.status_code == 302
    doc = r.documents.get()
    client.login(username="olivia", password="correct horse battery")
    download = client.get(f"/staff/requests/{r.reference}/documents/{doc.pk}/")
    assert download["Content-Disposition"] == f'attachment; filename="{r.reference}-identity-{doc.pk}.png"'
    assert download["Content-Type"] == "image/png" and doc.original_name == "id.exe"


def test_a_stored_type_that_is_not_a_checked_one_is_served_as_bytes(officer_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(
            intake=IntakeDetails(
                agent_name="A",
                agent_email="a@example.org",
                documents=(("agent_authorisation", SimpleUploadedFile("p.pdf", PDF)),),
            )
        )
    doc = r.documents.get()
    RequestDocument.objects.filter(pk=doc.pk).update(content_type="text/html")  # a row written before the check, say
    res = officer_client.get(f"/staff/requests/{r.reference}/documents/{doc.pk}/")
    assert res["Content-Type"] == "application/octet-stream"
    assert res["Content-Disposition"] == f'attachment; filename="{r.reference}-agent-authorisation-{doc.pk}.bin"'

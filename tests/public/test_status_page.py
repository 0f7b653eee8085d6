"""The requester's status page and the email confirmation link, as a browser-less client sees them."""

import re

import pytest

from dsr.models import DemoCustomer, Status
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_deny, request_information_ask, request_verify
from tests.factories import PNG, request_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(django_capture_on_commit_callbacks, mailoutbox):
    DemoCustomer.objects.create(
        email="sam@example.org", full_name="Sam Sample", postal_code="1011 AB", phone="0612345678"
    )
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(email="sam@example.org", request_type="access", regime="gdpr", language="nl")
    body = mailoutbox[-1].body
    return r, re.search(r"/v/([\w-]+)/", body).group(1), re.search(r": (\d{6})", body).group(1)


def test_link_get_does_not_confirm_post_does(client, submitted):
    r, token, _ = submitted
    page = client.get(f"/v/{token}/")
    assert page.status_code == 200 and "<form" in page.content.decode()
    r.refresh_from_db()
    assert r.email_verified_at is None  # a mail scanner opening the link changes nothing
    res = client.post(f"/v/{token}/")
    assert res.status_code == 302 and res["Location"] == f"/r/{r.public_token}/"
    r.refresh_from_db()
    assert r.email_verified_at is not None


def test_bad_link_is_a_plain_refusal(client, submitted):
    r, _, _ = submitted
    res = client.post("/v/not-a-token/")
    assert res.status_code == 400 and "not valid" in res.content.decode()
    assert r.reference not in res.content.decode() and r.email not in res.content.decode()


def test_code_then_identity_on_the_status_page(client, submitted):
    r, _, code = submitted
    url = f"/r/{r.public_token}/"
    page = client.get(url).content.decode()
    assert 'name="code"' in page and 'lang="nl"' in page  # the request keeps its language
    wrong = client.post(url, {"action": "code", "code": "12"})
    assert wrong.status_code == 400
    res = client.post(url, {"action": "code", "code": code})
    assert res.status_code == 302
    page = client.get(url).content.decode()
    assert 'name="postal_code"' in page and 'name="code"' not in page
    empty = client.post(url, {"action": "identity"})
    assert empty.status_code == 400
    miss = client.post(url, {"action": "identity", "postal_code": "9999 ZZ"})
    assert miss.status_code == 400
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION
    hit = client.post(url, {"action": "identity", "postal_code": "1011ab"})
    assert hit.status_code == 302
    r.refresh_from_db()
    assert r.status == Status.VERIFIED


def test_resend_gives_a_new_code(client, submitted, mailoutbox, django_capture_on_commit_callbacks):
    r, _, code = submitted
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(f"/r/{r.public_token}/", {"action": "resend"})
    assert res.status_code == 302
    new_code = re.search(r": (\d{6})", mailoutbox[-1].body).group(1)
    assert r.emails.last().template == "verify_email" and mailoutbox[-1].to == ["sam@example.org"]
    assert client.post(f"/r/{r.public_token}/", {"action": "code", "code": new_code}).status_code == 302


def test_requester_answers_a_question(client, officer):
    r = request_create()
    r = request_verify(request=r, actor=Actor.staff(officer), note="ok")
    request_information_ask(request=r, actor=Actor.staff(officer), message="Which account do you mean?")
    url = f"/r/{r.public_token}/"
    page = client.get(url).content.decode()
    assert "Which account do you mean?" in page and 'name="message"' in page
    assert client.post(url, {"action": "reply", "message": ""}).status_code == 400
    assert client.post(url, {"action": "reply", "message": "The business one"}).status_code == 302
    r.refresh_from_db()
    assert r.status == Status.IN_PROGRESS
    assert r.events.get(event_type="requester_replied").data["message"] == "The business one"


def test_rate_limit_on_verification_attempts(client, submitted, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "verify_ip": "2/hour"}
    r, _, code = submitted
    wrong = "000000" if code != "000000" else "111111"
    url = f"/r/{r.public_token}/"
    for _ in range(2):
        assert client.post(url, {"action": "code", "code": wrong}).status_code == 400  # refused, and counted
    res = client.post(url, {"action": "code", "code": wrong})
    assert res.status_code == 429 and int(res["Retry-After"]) > 0


def test_officer_asks_for_an_id_the_requester_uploads_it_and_it_goes_after_the_decision(
    client, officer, settings, tmp_path, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    r = request_create(request_type="access_specific")
    request_information_ask(
        request=r, actor=Actor.staff(officer), message="Please send a copy of your ID.", id_document=True
    )
    url = f"/r/{r.public_token}/"
    assert 'name="document"' in client.get(url).content.decode()
    bad = client.post(url, {"action": "reply", "message": "", "document": SimpleUploadedFile("id.png", b"GIF89a...")})
    assert bad.status_code == 400 and "PDF, PNG or JPEG" in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        ok = client.post(url, {"action": "reply", "message": "", "document": SimpleUploadedFile("id.png", PNG)})
    assert ok.status_code == 302
    doc = r.documents.get()
    assert doc.kind == "identity" and (tmp_path / doc.file.name).exists()
    with django_capture_on_commit_callbacks(execute=True):
        request_verify(request=r, actor=Actor.staff(officer), note="ID checked")
    doc.refresh_from_db()
    assert doc.deleted_at and not list(tmp_path.rglob("*.png"))


def test_signed_in_account_holder_reauthenticates(client, django_user_model):
    user = django_user_model.objects.create_user("holder", "holder@example.org", "s3cret-pass-word")
    r = request_create(email="holder@example.org", request_type="erasure")
    url = f"/r/{r.public_token}/"
    assert 'value="reauth"' not in client.get(url).content.decode()
    client.force_login(user)
    assert 'value="reauth"' in client.get(url).content.decode()
    assert client.post(url, {"action": "reauth", "password": "wrong"}).status_code == 400
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION
    assert client.post(url, {"action": "reauth", "password": "s3cret-pass-word"}).status_code == 302
    r.refresh_from_db()
    assert r.status == Status.VERIFIED and r.verification_method == "account_reauth"


def test_another_signed_in_user_cannot_reauthenticate_for_someone_else(client, django_user_model):
    other = django_user_model.objects.create_user("other", "other@example.org", "s3cret-pass-word")
    r = request_create(email="victim@example.org")
    client.force_login(other)
    url = f"/r/{r.public_token}/"
    assert 'value="reauth"' not in client.get(url).content.decode()
    client.post(url, {"action": "reauth", "password": "s3cret-pass-word"})
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION


def test_the_answer_is_on_the_status_page(client, officer):
    r = request_create(regime="gdpr", language="sv")
    request_deny(
        request=r, actor=Actor.staff(officer), reason_category="exempt", message="Uppgifterna omfattas av ett lagkrav."
    )
    page = client.get(f"/r/{r.public_token}/").content.decode()
    assert "Vårt svar" in page and "Uppgifterna omfattas av ett lagkrav." in page
    assert "lämna in ett klagomål till en dataskyddsmyndighet" in page  # the right to complain (Art 77)

"""Who may download the access package, and how: the requester from their status page only once
the answer is sent, after a fresh emailed code, a limited number of times, until it expires;
staff from the request page and the API, a reviewer never. Every download is an audit event."""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from dsr.event_types import EventType
from dsr.fulfilment.models import AccessPackage, DownloadCode
from dsr.fulfilment.services import package_staff
from dsr.models import OutboundEmail
from dsr.services.audit import Actor
from tests.factories import officer_create, staff_token_key
from tests.fulfilment import packaging
from tests.fulfilment.packaging import request_packaged

pytestmark = pytest.mark.django_db
package_systems = packaging.package_systems  # the fixture


def _events(req, kind):
    req.refresh_from_db()
    return [e for e in req.events.all() if e.event_type == kind]


@pytest.fixture
def answered(officer, package_systems, django_capture_on_commit_callbacks):
    """A request whose answer was sent: its package is on the status page."""
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    return req, package


def _urls(req):
    base = f"/r/{req.public_token}/"
    return {"status": base, "code": base + "package/code/", "confirm": base + "package/confirm/",
            "download": base + "package/download/"}  # fmt: skip


def _code_sent(client, req, capture) -> str:
    with capture(execute=True):
        response = client.post(_urls(req)["code"])
    assert response.status_code == 302 and response["Location"].endswith("#package")
    body = OutboundEmail.objects.filter(request=req, template="package_code").latest("pk").body_text
    return re.search(r"^(\d{6})$", body, re.M).group(1)


def test_the_requester_downloads_after_a_fresh_emailed_code(client, answered, django_capture_on_commit_callbacks):
    req, package = answered
    urls = _urls(req)
    page = client.get(urls["status"]).content.decode()
    assert "Email me a download code" in page and urls["download"] not in page
    code = _code_sent(client, req, django_capture_on_commit_callbacks)
    email = OutboundEmail.objects.get(request=req, template="package_code")
    assert email.to == req.email and "bench1" not in email.subject
    assert len(_events(req, EventType.PACKAGE_CODE_SENT)) == 1
    stored = DownloadCode.objects.get(package=package)
    assert code not in stored.code_digest and stored.expires_at > timezone.now()
    page = client.get(urls["status"]).content.decode()
    assert "We have emailed you a code" in page and 'name="code"' in page
    response = client.post(urls["confirm"], {"code": code})
    assert response.status_code == 302
    page = client.get(urls["status"]).content.decode()
    assert urls["download"] in page and "Thank you: your download is ready." in page

    response = client.get(urls["download"])
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{req.reference}-data.zip"'
    assert "no-store" in response["Cache-Control"]
    data = b"".join(response.streaming_content)
    assert zipfile.ZipFile(io.BytesIO(data)).read("data/crm/contacts.json")
    package.refresh_from_db()
    assert package.downloads == 1
    downloaded = _events(req, EventType.PACKAGE_DOWNLOADED)
    assert [(e.data["by"], e.actor_type) for e in downloaded] == [("requester", "requester")]


def test_without_a_fresh_code_the_requester_gets_nothing(client, answered):
    req, package = answered
    response = client.get(_urls(req)["download"])
    assert response.status_code == 302 and not hasattr(response, "streaming_content")
    assert "ask for a code first" in client.get(_urls(req)["status"]).content.decode()
    package.refresh_from_db()
    assert package.downloads == 0 and _events(req, EventType.PACKAGE_DOWNLOADED) == []


def test_a_wrong_code_is_refused_and_too_many_need_a_new_code(
    client, answered, settings, django_capture_on_commit_callbacks
):
    settings.DSR_PACKAGE_CODE_ATTEMPTS = 3
    req, package = answered
    urls = _urls(req)
    code = _code_sent(client, req, django_capture_on_commit_callbacks)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    client.post(urls["confirm"], {"code": wrong})
    assert "That code is not right. You can try 2 more times." in client.get(urls["status"]).content.decode()
    client.post(urls["confirm"], {"code": wrong})
    client.post(urls["confirm"], {"code": wrong})
    client.post(urls["confirm"], {"code": code})  # the right one, too late
    page = client.get(urls["status"]).content.decode()
    assert "Too many wrong codes. Ask for a new one below." in page and urls["download"] not in page
    assert client.get(urls["download"]).status_code == 302
    assert DownloadCode.objects.get(package=package).confirmed_at is None
    # A new code works (and the old one no longer does).
    fresh = _code_sent(client, req, django_capture_on_commit_callbacks)
    client.post(urls["confirm"], {"code": fresh})
    assert client.get(urls["download"]).status_code == 200


def test_an_expired_code_and_an_expired_grant_are_refused(client, answered, django_capture_on_commit_callbacks):
    req, package = answered
    urls = _urls(req)
    code = _code_sent(client, req, django_capture_on_commit_callbacks)
    DownloadCode.objects.filter(package=package).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.post(urls["confirm"], {"code": code})
    assert "This code has expired." in client.get(urls["status"]).content.decode()
    assert client.get(urls["download"]).status_code == 302

    code = _code_sent(client, req, django_capture_on_commit_callbacks)
    client.post(urls["confirm"], {"code": code})
    DownloadCode.objects.filter(package=package).update(grant_until=timezone.now() - timedelta(seconds=1))
    assert client.get(urls["download"]).status_code == 302
    assert _events(req, EventType.PACKAGE_DOWNLOADED) == []


def test_the_grant_is_bound_to_the_session_that_typed_the_code(client, answered, django_capture_on_commit_callbacks):
    req, _ = answered
    urls = _urls(req)
    client.post(urls["confirm"], {"code": _code_sent(client, req, django_capture_on_commit_callbacks)})
    assert client.get(urls["download"]).status_code == 200
    other_browser = type(client)()
    assert other_browser.get(urls["download"]).status_code == 302


def test_another_requesters_token_answers_404(client, answered, officer, django_capture_on_commit_callbacks):
    req, _ = answered
    client.post(_urls(req)["confirm"], {"code": _code_sent(client, req, django_capture_on_commit_callbacks)})
    for url in ("/r/not-a-token/package/download/", "/r/" + "x" * 70 + "/package/download/"):
        assert client.get(url).status_code == 404
    assert client.post("/r/not-a-token/package/code/").status_code == 404
    assert client.post("/r/not-a-token/package/confirm/", {"code": "123456"}).status_code == 404
    # Another requester's own, valid token does not reach this package, whatever this session holds.
    from tests.fulfilment.conftest import verified_request

    other = verified_request(officer=officer, email="someone@example.org")
    assert client.get(f"/r/{other.public_token}/package/download/").status_code == 404
    assert OutboundEmail.objects.filter(request=other, template="package_code").count() == 0


def test_downloads_beyond_the_maximum_are_refused(client, answered, django_capture_on_commit_callbacks):
    req, package = answered
    AccessPackage.objects.filter(pk=package.pk).update(max_downloads=2)
    urls = _urls(req)
    client.post(urls["confirm"], {"code": _code_sent(client, req, django_capture_on_commit_callbacks)})
    assert client.get(urls["download"]).status_code == 200
    assert client.get(urls["download"]).status_code == 200
    third = client.get(urls["download"])
    assert third.status_code == 302
    page = client.get(urls["status"]).content.decode()
    assert "You have downloaded it 2 times, the most we allow." in page
    assert len(_events(req, EventType.PACKAGE_DOWNLOADED)) == 2
    # No new code either.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(urls["code"])
    assert OutboundEmail.objects.filter(request=req, template="package_code").count() == 1


def test_nothing_is_offered_before_the_answer_is_sent(
    client, officer, package_systems, django_capture_on_commit_callbacks
):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    assert package is not None and req.is_open
    urls = _urls(req)
    assert "Email me a download code" not in client.get(urls["status"]).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(urls["code"])
    assert not OutboundEmail.objects.filter(template="package_code").exists()
    assert _events(req, EventType.PACKAGE_CODE_SENT) == []
    assert client.get(urls["download"]).status_code == 404


def test_the_status_page_says_when_the_download_expired_and_when_it_was_deleted(client, answered):
    req, package = answered
    AccessPackage.objects.filter(pk=package.pk).update(expires_at=timezone.now() - timedelta(days=1))
    page = client.get(_urls(req)["status"]).content.decode()
    assert "The download expired on" in page and "we will make it available again" in page
    assert "Email me a download code" not in page
    from dsr.fulfilment.services import packages

    packages.package_purge(package_id=package.pk, reason="expired")
    page = client.get(_urls(req)["status"]).content.decode()
    assert "was deleted on" in page and "make a new request" in page


def test_the_status_page_panel_speaks_the_requests_language(
    client, officer, package_systems, django_capture_on_commit_callbacks
):
    req, _ = request_packaged(officer, django_capture_on_commit_callbacks, language="sv")
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_answer_send(request=req, actor=Actor.staff(officer))
    page = client.get(_urls(req)["status"]).content.decode()
    assert "Mejla mig en nedladdningskod" in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_urls(req)["code"])
    email = OutboundEmail.objects.get(request=req, template="package_code")
    assert email.language == "sv" and "Din nedladdningskod" in email.subject


def test_the_download_steps_are_limited_by_the_client_address(client, answered, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "package_ip": "2/hour"}
    req, _ = answered
    urls = _urls(req)
    for _ in range(2):
        client.post(urls["confirm"], {"code": "000000"}, REMOTE_ADDR="203.0.113.9")
    response = client.post(urls["confirm"], {"code": "000000"}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 429 and response["Retry-After"]
    # Another address is not held back by the first one's attempts.
    assert client.post(urls["confirm"], {"code": "000000"}, REMOTE_ADDR="203.0.113.10").status_code == 302


def test_staff_download_from_the_api_and_the_request_page_each_an_event_and_a_reviewer_is_refused(
    client, answered, officer, staff_api
):
    req, package = answered
    response = staff_api.get(f"/api/v1/staff/requests/{req.reference}/package/")
    assert response.status_code == 200 and b"".join(response.streaming_content)[:2] == b"PK"
    client.force_login(officer)
    response = client.get(f"/dashboard/fulfilment/requests/{req.reference}/package/")
    assert response.status_code == 200 and b"".join(response.streaming_content)[:2] == b"PK"
    downloaded = _events(req, EventType.PACKAGE_DOWNLOADED)
    assert [(e.data["by"], e.actor_id) for e in downloaded] == [("staff", officer.pk)] * 2
    package.refresh_from_db()
    assert package.downloads == 0  # staff downloads do not use the requester's

    reviewer = officer_create(username="reviewer1", email="reviewer1@company.example", role="reviewer")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(reviewer)}")
    assert api.get(f"/api/v1/staff/requests/{req.reference}/package/").status_code == 403
    assert api.post(f"/api/v1/staff/requests/{req.reference}/package/reissue/").status_code == 403
    assert len(_events(req, EventType.PACKAGE_DOWNLOADED)) == 2 and _events(req, EventType.PACKAGE_REISSUED) == []


def test_reissue_through_the_api_and_a_deleted_package_answers_409(
    answered, staff_api, django_capture_on_commit_callbacks
):
    req, package = answered
    AccessPackage.objects.filter(pk=package.pk).update(expires_at=timezone.now() - timedelta(days=3), downloads=5)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_api.post(f"/api/v1/staff/requests/{req.reference}/package/reissue/")
    assert response.status_code == 200 and response.json()["package"]["downloads"] == 0
    assert OutboundEmail.objects.filter(request=req, template="package_reissued").count() == 1
    from dsr.fulfilment.services import packages

    packages.package_purge(package_id=package.pk, reason="expired")
    response = staff_api.post(f"/api/v1/staff/requests/{req.reference}/package/reissue/")
    assert response.status_code == 409 and "deleted" in response.json()["detail"]
    assert staff_api.get(f"/api/v1/staff/requests/{req.reference}/package/").status_code == 409


def test_the_request_page_reissues_the_package(client, answered, officer, django_capture_on_commit_callbacks):
    req, package = answered
    AccessPackage.objects.filter(pk=package.pk).update(expires_at=timezone.now() - timedelta(days=1))
    client.force_login(officer)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert f"/dashboard/fulfilment/requests/{req.reference}/package/reissue/" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/dashboard/fulfilment/requests/{req.reference}/package/reissue/")
    assert response.status_code == 302
    package.refresh_from_db()
    assert package.expires_at > timezone.now() and len(_events(req, EventType.PACKAGE_REISSUED)) == 1

"""`Cache-Control: no-store` wherever personal data is shown: a rule over every URL pattern. Each
pattern is either under the areas of dsr.middleware (and then every response there, whatever its
status, says no-store) or named below as showing nothing personal. A new URL must pick one."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLResolver, get_resolver

from dsr.middleware import shows_personal_data
from dsr.models import RequestDocument
from dsr.services.intake import IntakeDetails
from tests.factories import PNG, request_create, totp_device_create

pytestmark = pytest.mark.django_db
# Patterns that show no personal data: the language switch, ESP webhooks (they answer the ESP
# with nothing), the OpenAPI schema and its docs page. Static files are served before any view.
PUBLIC = ("i18n/", "anymail/", "api/schema/", "api/docs/")
# These must answer 200 (as a signed-in officer), so the header is seen on real content too.
MUST_SHOW = {
    "dashboard:queue",
    "dashboard:queue-csv",
    "dashboard:request",
    "dashboard:reports",
    "dashboard:reports-csv",
    "dsr:request-status",
    "dsr:staff-document",
    "api:staff-requests",
    "api:staff-request-detail",
    "dsr-auth:otp",
    "admin:dsr_datasubjectrequest_change",
    "fulfilment-api:status",
    "fulfilment-api:systems",
    "fulfilment-dashboard:systems",
}


def _patterns(patterns, prefix="", namespace=None):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
        else:
            yield prefix + str(p.pattern), f"{namespace}:{p.name}" if namespace else p.name


def _concrete(pattern: str, sample: dict) -> str:
    path = re.sub(r"\^\(\?P<app_label>[\w|]+\)/\$", "dsr/", pattern).replace("(?P<url>.*)$", "no-such-page/")
    path = path.replace("^mailgun/inbound(_mime)?/$", "mailgun/inbound/")
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(sample[m.group(1)]), path)
    assert not re.search(r"[<>()^$?]", path), f"URL pattern {pattern!r} needs a sample here"
    return "/" + path


@pytest.fixture
def sample(officer, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(intake=IntakeDetails(documents=(("identity", SimpleUploadedFile("id.png", PNG)),)))
    document = RequestDocument.objects.get(request=r)
    # The admin's second-factor device pages (<pk>) need a device that exists.
    device = totp_device_create(user=officer)
    return {
        "reference": r.reference,
        "token": r.public_token,
        "document_id": document.pk,
        "action": "verify",
        "object_id": r.pk,
        "content_type_id": 1,
        "id": officer.pk,
        "pk": device.pk,
        "uidb64": "MQ",
        "code": "x",
        "token_id": "dsr_0000000000",
        "system": "shop",
        "system_run_id": 1,
    }


def test_every_url_pattern_with_personal_data_answers_no_store(client, officer, sample):
    officer.is_superuser = True
    officer.save(update_fields=["is_superuser"])
    seen, shown = [], set()
    for pattern, name in _patterns(get_resolver().url_patterns):
        path = _concrete(pattern, sample)
        if not shows_personal_data(path):
            assert pattern.startswith(PUBLIC), f"{path} ({name}) is neither no-store nor known to be public"
            continue
        for method in ("get", "post"):
            client.force_login(officer)  # a POST to sign-out ends the session
            response = getattr(client, method)(path)
            assert "no-store" in response.get("Cache-Control", ""), (
                f"{method.upper()} {path} ({name}): {response.status_code}"
            )
            if method == "get" and response.status_code == 200:
                shown.add(name)
        seen.append(name)
    assert MUST_SHOW <= shown, MUST_SHOW - shown
    assert len(seen) > 60  # the admin's, the dashboard's, the API's, the public pages'


def test_the_public_api_answer_is_not_stored(api):
    response = api.post(
        "/api/v1/requests/",
        {"type": "access", "regime": "ccpa", "email": "p@example.org", "full_name": "P"},
        format="json",
    )
    assert response.status_code == 201 and "no-store" in response["Cache-Control"]


def test_public_pages_without_personal_data_may_be_cached(client):
    assert "no-store" not in client.get("/api/schema/").get("Cache-Control", "")

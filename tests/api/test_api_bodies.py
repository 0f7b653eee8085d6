"""Every API endpoint that takes a body answers bad bodies — nested a thousand levels deep, huge,
in the wrong media type, not UTF-8, not an object — with a 4xx problem response, never a 500, and
records nothing."""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from dsr.models import AuditEvent, DataSubjectRequest, OutboundEmail
from dsr.services.intake import CORRECTIONS_MAX
from tests.factories import request_create

pytestmark = pytest.mark.django_db

DEEP = 1000


def _post_endpoints():
    """(url name, takes a reference) for every API view with a POST handler."""
    api = next(p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and p.namespace == "api")
    found = []
    for pattern in api.url_patterns:
        assert isinstance(pattern, URLPattern)
        view = getattr(pattern.callback, "cls", None)
        # A ViewSet's route posts when its action map says so.
        if view is not None and (hasattr(view, "post") or "post" in getattr(pattern.callback, "actions", {})):
            found.append((pattern.name, "reference" in pattern.pattern.converters))
    return found


ENDPOINTS = _post_endpoints()


def test_every_body_taking_endpoint_is_covered():
    names = sorted(name for name, _ in ENDPOINTS)
    assert len(names) == 13, names  # public intake, staff intake, ten actions on a request, the suppression check
    assert (
        "suppressions-check" in names
        and "public-request-create" in names
        and "staff-requests" in names
        and "staff-request-assign" in names
    )


def _base(**extra):
    return {
        "type": "rectification",
        "regime": "gdpr",
        "email": "body@example.org",
        "channel": "phone",
        "corrections": [{"field": "postal_code", "correct": "1012"}],
        "reason": "r",
        "message": "m",
        "note": "n",
        "assignee": "olivia",
        "reason_category": "other",
        **extra,
    }


def _nest(open_, close, inner="1"):
    return open_ * DEEP + inner + close * DEEP


BAD_BODIES = {
    "nested arrays": (_nest("[", "]"), "application/json"),
    "nested objects": (_nest('{"a":', "}"), "application/json"),
    "nested inside corrections": (
        '{"type":"rectification","regime":"gdpr","email":"x@example.org","corrections":' + _nest("[", "]") + "}",
        "application/json",
    ),
    "nested inside a correction": (
        '{"type":"rectification","regime":"gdpr","email":"x@example.org","corrections":[{"field":'
        + _nest('{"a":', "}")
        + "}]}",
        "application/json",
    ),
    "nested in a text field": (
        '{"message":' + _nest("[", "]") + ',"reason":' + _nest("[", "]") + "}",
        "application/json",
    ),
    "ten thousand corrections": (
        json.dumps(_base(corrections=[{"field": "other", "correct": "x"}] * 10_000)),
        "application/json",
    ),
    "a huge string": (json.dumps(_base(details="x" * 400_000, message="x" * 400_000)), "application/json"),
    "a huge array of numbers": ('{"message":[' + ",".join(["1"] * 200_000) + "]}", "application/json"),
    "invalid UTF-8": (b'{"email": "\xff\xfe", "message": "\xc3\x28"}', "application/json"),
    "latin-1 said to be latin-1": ('{"message": "caf\xe9"}'.encode("latin-1"), "application/json; charset=latin-1"),
    "a byte order mark": (b"\xef\xbb\xbf" + json.dumps(_base()).encode(), "application/json"),
    "truncated": ('{"message": "x", "reason": ', "application/json"),
    "a top-level array": ("[]", "application/json"),
    "a top-level string": ('"message"', "application/json"),
    "a top-level number": ("42", "application/json"),
    "null": ("null", "application/json"),
    "true": ("true", "application/json"),
    "NaN": ('{"message": NaN, "reason": Infinity}', "application/json"),
    "a number of 5000 digits": ('{"message": ' + "9" * 5000 + "}", "application/json"),
    "text/plain": (json.dumps(_base()), "text/plain"),
    "XML": ("<request><type>access</type></request>", "application/xml"),
    "a form": ("type=access&regime=gdpr&email=f%40example.org&message=m&reason=r", "application/x-www-form-urlencoded"),
    "multipart": (
        '--b\r\nContent-Disposition: form-data; name="message"\r\n\r\nm\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
    ),
    "no media type": (json.dumps(_base()), ""),
    "a made-up JSON type": (json.dumps(_base()), "application/vnd.evil+json"),
}


def _counts():
    return DataSubjectRequest.objects.count(), AuditEvent.objects.count(), OutboundEmail.objects.count()


@pytest.fixture
def clients(staff_api):
    staff_api.raise_request_exception = False
    public = APIClient()
    public.raise_request_exception = False
    return public, staff_api


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies_get_a_4xx_problem_on_every_endpoint(clients, case):
    public, staff = clients
    existing = request_create(email="held@example.org")
    body, content_type = BAD_BODIES[case]
    before = _counts()
    for name, with_reference in ENDPOINTS:
        url = reverse(f"api:{name}", kwargs={"reference": existing.reference} if with_reference else None)
        client = public if name == "public-request-create" else staff
        res = client.generic("POST", url, body, content_type=content_type)
        assert 400 <= res.status_code < 500, (name, case, res.status_code, res.content[:300])
        assert res["Content-Type"].startswith("application/problem+json"), (name, case)
        problem = res.json()
        assert problem["status"] == res.status_code and problem["title"] and problem["detail"]
        assert "{" not in problem["title"] and "{media_type}" not in problem["detail"]
    assert _counts() == before


def test_what_each_refusal_says(clients):
    public, _ = clients
    url = reverse("api:public-request-create")

    def post(body, content_type="application/json"):
        return public.generic("POST", url, body, content_type=content_type)

    deep = post(BAD_BODIES["nested inside corrections"][0])
    assert deep.status_code == 400 and "nested more than" in deep.json()["detail"]
    big = post(BAD_BODIES["a huge string"][0])
    assert big.status_code == 413 and "larger than" in big.json()["detail"]
    assert post("[]").json()["detail"] == "The body must be a JSON object."
    assert "UTF-8" in post(BAD_BODIES["invalid UTF-8"][0]).json()["detail"]
    media = post("x", "text/plain")
    assert media.status_code == 415
    assert media.json()["title"] == "Unsupported Media Type"
    assert (
        media.json()["detail"] == 'Unsupported media type "text/plain" in request. Send the body as application/json.'
    )


def test_corrections_are_capped_with_a_clear_message(clients):
    public, staff = clients
    rows = [{"field": "other", "wrong": f"w{i}", "correct": f"c{i}"} for i in range(CORRECTIONS_MAX + 1)]
    for client, url, extra in (
        (public, "/api/v1/requests/", {}),
        (staff, "/api/v1/staff/requests/", {"channel": "phone"}),
    ):
        body = {"type": "rectification", "regime": "gdpr", "email": "many@example.org", "corrections": rows, **extra}
        res = client.post(url, body, format="json")
        assert res.status_code == 400
        assert res.json()["errors"]["corrections"] == [
            f"Send at most {CORRECTIONS_MAX} corrections in one request; describe any others under details."
        ]
        ok = client.post(url, {**body, "corrections": rows[:CORRECTIONS_MAX]}, format="json")
        assert ok.status_code == 201
    assert DataSubjectRequest.objects.count() == 2


def test_the_service_caps_corrections_too(db):
    from dsr.errors import InvalidInput
    from dsr.services.intake import IntakeDetails

    rows = tuple({"field": "other", "correct": f"c{i}"} for i in range(CORRECTIONS_MAX + 1))
    with pytest.raises(InvalidInput) as exc:
        request_create(request_type="rectification", intake=IntakeDetails(corrections=rows))
    assert exc.value.field == "corrections" and str(CORRECTIONS_MAX) in exc.value.message
    with pytest.raises(InvalidInput):
        request_create(
            request_type="rectification", intake=IntakeDetails(corrections=({"field": ["x"], "correct": {"a": 1}},))
        )
    assert DataSubjectRequest.objects.count() == 0


def test_a_good_body_still_works_at_the_limits(clients):
    public, _ = clients
    body = {
        "type": "rectification",
        "regime": "gdpr",
        "email": "fine@example.org",
        "details": "é" * 10_000,
        "corrections": [{"field": "other", "wrong": "ü" * 500, "correct": "😀" * 500}] * CORRECTIONS_MAX,
    }
    encoded = json.dumps(body)  # \u-escaped, the longest form a client sends
    res = public.generic("POST", "/api/v1/requests/", encoded, content_type="application/json; charset=utf-8")
    assert res.status_code == 201, res.content[:300]

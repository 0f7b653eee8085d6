"""The REST API: public intake, staff list/detail/actions, problem responses, no enumeration."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dsr.models import AuditEvent, DataSubjectRequest, OutboundEmail
from tests.factories import officer_create, request_create

pytestmark = pytest.mark.django_db

PUBLIC = "/api/v1/requests/"
STAFF = "/api/v1/staff/requests/"


def _body(**overrides):
    body = {
        "type": "access",
        "regime": "ccpa",
        "email": "ann@example.org",
        "full_name": "Ann",
        "language": "en",
        "details": "",
    }
    body.update(overrides)
    return body


def test_public_submit_returns_reference_only(api, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        res = api.post(PUBLIC, _body(), format="json")
    assert res.status_code == 201, res.content
    assert set(res.json()) == {"reference", "message"}
    r = DataSubjectRequest.objects.get(reference=res.json()["reference"])
    assert r.public_token not in res.content.decode()
    assert mailoutbox[0].to == ["ann@example.org"]


def test_public_submit_does_not_reveal_whether_email_is_known(api):
    request_create(email="known@example.org")
    known = api.post(PUBLIC, _body(email="known@example.org"), format="json")
    unknown = api.post(PUBLIC, _body(email="never-seen@example.org"), format="json")
    assert known.status_code == unknown.status_code == 201
    strip = lambda j: {k: v for k, v in j.items() if k != "reference"}  # noqa: E731
    assert strip(known.json()) == strip(unknown.json())
    assert set(known.headers) == set(unknown.headers)


def test_public_submit_invalid_is_a_problem_response(api):
    res = api.post(PUBLIC, _body(type="teleport", email="not-an-email"), format="json")
    assert res.status_code == 400
    assert res["Content-Type"].startswith("application/problem+json")
    body = res.json()
    assert body["status"] == 400 and body["title"] == "Invalid input"
    assert set(body["errors"]) == {"type", "email"}
    assert DataSubjectRequest.objects.count() == 0


def test_staff_endpoints_need_an_officer(api):
    assert api.get(STAFF).status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Token nonsense")
    assert api.get(STAFF).status_code == 401
    from django.contrib.auth import get_user_model

    from tests.factories import staff_token_key

    nobody = get_user_model().objects.create_user("nobody", "n@example.org", "pw-long-enough")
    api.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(nobody)}")
    res = api.get(STAFF)
    assert res.status_code == 403 and res.json()["status"] == 403


def test_staff_records_a_phone_request_received_in_the_past(staff_api):
    received = (timezone.now() - timedelta(days=10)).isoformat()
    res = staff_api.post(STAFF, _body(channel="phone", received_at=received, regime="ccpa"), format="json")
    assert res.status_code == 201, res.content
    body = res.json()
    r = DataSubjectRequest.objects.get(reference=body["reference"])
    assert r.channel == "phone"
    assert body["respond_by"] == (r.original_respond_by).isoformat()
    assert body["events"][0]["event_type"] == "received"
    assert body["events"][0]["actor"] == "olivia"


def test_staff_list_filters_and_search(staff_api):
    a = request_create(request_type="erasure", regime="gdpr", email="a@example.org", full_name="Alma Berg")
    request_create(request_type="access", regime="ccpa", email="b@example.org")
    late = request_create(
        request_type="access", regime="ccpa", email="c@example.org", received_at=timezone.now() - timedelta(days=60)
    )

    def refs(**params):
        res = staff_api.get(STAFF, params)
        assert res.status_code == 200, res.content
        return {row["reference"] for row in res.json()["results"]}

    assert refs(type="erasure") == {a.reference}
    assert refs(regime="gdpr") == {a.reference}
    assert refs(overdue="true") == {late.reference}
    assert refs(search="alma") == {a.reference}
    assert refs(search=a.reference) == {a.reference}
    assert refs(search="A@EXAMPLE.ORG") == {a.reference}
    assert len(refs(status="awaiting_verification")) == 3
    row = staff_api.get(STAFF, {"type": "erasure"}).json()["results"][0]
    assert set(row) >= {"reference", "type", "regime", "status", "email", "received_at", "respond_by"}
    bad = staff_api.get(STAFF, {"status": "sideways"})
    assert bad.status_code == 400 and "status" in bad.json()["errors"]


def test_staff_list_query_count_does_not_grow(staff_api, django_assert_max_num_queries):
    for i in range(30):
        request_create(email=f"p{i}@example.org")
    # The token (its row, the holder's other tokens that knox drops once expired, the first use
    # written), the permissions, the count and the page: none grows with the rows.
    with django_assert_max_num_queries(7):
        res = staff_api.get(STAFF)
    assert res.json()["count"] == 30


def test_staff_detail_shows_clock_and_events(staff_api):
    r = request_create(regime="ccpa")
    body = staff_api.get(f"{STAFF}{r.reference}/").json()
    for key in (
        "received_at",
        "verified_at",
        "acknowledge_by",
        "respond_by",
        "original_respond_by",
        "status",
        "events",
    ):
        assert key in body
    assert body["respond_by"] == body["original_respond_by"] == r.original_respond_by.isoformat()
    assert staff_api.get(f"{STAFF}DSR-1999-000001/").status_code == 404


def test_actions_walk_a_request(staff_api, django_capture_on_commit_callbacks, mailoutbox):
    r = request_create()
    url = f"{STAFF}{r.reference}/"
    with django_capture_on_commit_callbacks(execute=True):
        res = staff_api.post(url + "extend/", {"reason": "Many systems"}, format="json")
        assert res.status_code == 200, res.content
        assert res.json()["respond_by"] == (r.original_respond_by + timedelta(days=45)).isoformat()
        assert res.json()["original_respond_by"] == r.original_respond_by.isoformat()
        assert staff_api.post(url + "verify/", {"note": "Matched"}, format="json").json()["status"] == "verified"
        done = staff_api.post(url + "complete/", {"message": "Sent you a copy."}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert [e["event_type"] for e in done.json()["events"]][-3:] == ["extended", "verified", "completed"]
    assert len(mailoutbox) == 3


def _counts(r):
    return AuditEvent.objects.filter(request=r).count(), OutboundEmail.objects.filter(request=r).count()


@pytest.mark.parametrize(
    "action,body,code,field",
    [
        ("extend", {}, 400, "reason"),
        ("extend", {"reason": "   "}, 400, "reason"),
        ("deny", {"reason_category": "bored", "message": "x"}, 400, "reason_category"),
        ("deny", {"reason_category": "exempt"}, 400, "message"),
        ("complete", {"message": "done"}, 409, None),
        ("complete", {}, 400, "message"),
    ],
)
def test_refused_actions_write_nothing(
    staff_api, action, body, code, field, django_capture_on_commit_callbacks, mailoutbox
):
    r = request_create()
    before = _counts(r)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        res = staff_api.post(f"{STAFF}{r.reference}/{action}/", body, format="json")
    assert res.status_code == code, res.content
    problem = res.json()
    assert problem["status"] == code and problem["detail"]
    if field:
        assert field in problem["errors"]
    assert _counts(r) == before
    assert mailoutbox == []


def test_extend_twice_is_a_conflict_saying_why(staff_api):
    r = request_create()
    url = f"{STAFF}{r.reference}/extend/"
    assert staff_api.post(url, {"reason": "Complex"}, format="json").status_code == 200
    before = _counts(r)
    res = staff_api.post(url, {"reason": "Again"}, format="json")
    assert res.status_code == 409
    assert "already" in res.json()["detail"].lower()
    assert _counts(r) == before


def test_openapi_schema_and_docs_are_served(api):
    res = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert res.status_code == 200
    schema = res.json()
    assert "/api/v1/requests/" in schema["paths"]
    assert "/api/v1/staff/requests/{reference}/extend/" in schema["paths"]
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger" in html.lower() and "cdn" not in html.lower() and "//unpkg" not in html


def test_create_officer_prints_a_usable_token_last(db, capsys, api):
    from django.core.management import call_command

    call_command("dsr_create_officer", "maria", email="maria@company.example")
    first = capsys.readouterr().out.strip().splitlines()[-1]
    api.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert api.get(STAFF).status_code == 200
    # Again: updates, and the new last line is a usable token that replaces the first one.
    call_command("dsr_create_officer", "maria", email="maria2@company.example")
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert second != first
    assert api.get(STAFF).status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert api.get(STAFF).status_code == 200


def test_public_api_takes_the_form_fields_with_the_same_validation(api):
    body = _body(
        type="rectification",
        relationship="visitor",
        corrections=[{"field": "postal_code", "wrong": "1", "correct": "2"}],
    )
    res = api.post(PUBLIC, body, format="json")
    assert res.status_code == 201, res.content
    r = DataSubjectRequest.objects.get(reference=res.json()["reference"])
    assert r.relationship == "visitor" and r.corrections == [{"field": "postal_code", "wrong": "1", "correct": "2"}]
    bad = api.post(PUBLIC, _body(type="rectification", email="x@example.org"), format="json")
    assert bad.status_code == 400 and "corrections" in bad.json()["errors"]
    agent = api.post(
        PUBLIC,
        _body(email="y@example.org", agent={"name": "A", "email": "a@example.org", "power_of_attorney": False}),
        format="json",
    )
    assert agent.status_code == 400 and "agent.power_of_attorney" in agent.json()["errors"]


def test_public_api_rate_limit_per_email_is_a_429_problem(api, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "form_email": "1/hour"}
    assert api.post(PUBLIC, _body(email="limit@example.org"), format="json").status_code == 201
    res = api.post(PUBLIC, _body(email="limit@example.org", type="erasure"), format="json")
    assert res.status_code == 429
    assert res["Content-Type"].startswith("application/problem+json") and int(res["Retry-After"]) > 0
    assert DataSubjectRequest.objects.count() == 1


def test_public_api_gpc_header_is_recorded(api):
    res = api.post(PUBLIC, _body(type="opt_out_sale"), format="json", HTTP_SEC_GPC="1")
    assert DataSubjectRequest.objects.get(reference=res.json()["reference"]).gpc_signal is True


def test_assign_tells_the_assignee_once(staff_api, django_capture_on_commit_callbacks, mailoutbox):
    colleague = officer_create(username="kim", email="kim@company.example")
    r = request_create()
    url = f"{STAFF}{r.reference}/assign/"
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        res = staff_api.post(url, {"assignee": "kim"}, format="json")
        again = staff_api.post(url, {"assignee": "kim"}, format="json")
    assert res.status_code == again.status_code == 200 and res.json()["assignee"] == "kim"
    assert [m.to for m in mailoutbox] == [["kim@company.example"]] and r.reference in mailoutbox[0].subject
    assert r.events.filter(event_type="assigned").count() == 1
    bad = staff_api.post(url, {"assignee": "nobody-here"}, format="json")
    assert bad.status_code == 400 and "assignee" in bad.json()["errors"]
    assert colleague.assigned_requests.count() == 1


def test_team_message_reaches_the_requester_without_changing_status(
    staff_api, django_capture_on_commit_callbacks, mailoutbox
):
    r = request_create(language="nl")
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        res = staff_api.post(
            f"{STAFF}{r.reference}/message/", {"message": "We zoeken nog in twee systemen."}, format="json"
        )
    assert res.status_code == 200 and res.json()["status"] == "awaiting_verification"
    assert mailoutbox[0].to == [r.email] and "We zoeken nog in twee systemen." in mailoutbox[0].body
    assert mailoutbox[0].subject.startswith("Een bericht over uw privacyverzoek")
    assert [e["template"] for e in res.json()["emails"]][-1] == "team_message"

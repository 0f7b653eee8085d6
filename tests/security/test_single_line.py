"""Single-line fields (names, addresses, correction values, identity details, the declaration's
signature) refuse line breaks and control characters at every door: the web form, the status
page, the public and staff API and the services — with one message, and nothing recorded."""

import pytest

from dsr.errors import InvalidInput
from dsr.models import DataSubjectRequest, DemoCustomer, OutboundEmail, Status
from dsr.services import verification
from dsr.services.intake import IntakeDetails, request_submit
from dsr.validators import SINGLE_LINE_MESSAGE, single_line_problem
from tests.factories import request_create

BAD = [
    "Alex\nExample",
    "Alex\rExample",
    "Alex\tExample",
    "Alex\x1bExample",
    "Alex\x85Example",
    "Alex\u2028Example",
    "Alex\u2029Example",
    "Alex\x7fExample",
    "Alex\u202eelpmaxE",
    "Alex\u2066Example",
]
GOOD = ["Zoë Ødegård-O'Brien", "李小龍", "Ana María de la Cruz", "👩‍💻 Dev", "Łukasz Żółć", "محمد", "  padded  "]
MESSAGE = str(SINGLE_LINE_MESSAGE)


@pytest.mark.parametrize("value", BAD)
def test_line_breaks_and_control_characters_are_problems(value):
    assert single_line_problem(value)


@pytest.mark.parametrize("value", GOOD)
def test_names_in_any_script_are_fine(value):
    assert not single_line_problem(value)


def _form(**overrides):
    data = {
        "request_type": "rectification",
        "regime": "gdpr",
        "relationship": "customer",
        "email": "form@example.org",
        "full_name": "Form Person",
        "correction_0_field": "postal_code",
        "correction_0_wrong": "1011",
        "correction_0_correct": "1012",
    }
    data.update(overrides)
    return data


FORM_FIELDS = ["full_name", "agent_name", "correction_0_wrong", "correction_0_correct"]


@pytest.mark.django_db
@pytest.mark.parametrize("field", FORM_FIELDS)
@pytest.mark.parametrize("value", ["Alex\nExample", "Alex\x1bExample", "Alex\u202eExample"])
def test_web_form_refuses_them_with_a_clear_message(client, field, value):
    extra = {
        "is_agent": "on",
        "agent_name": "Ann Agent",
        "agent_email": "agent@example.org",
        "agent_power_of_attorney": "on",
    }
    res = client.post("/", _form(**{**extra, field: value}))
    assert res.status_code == 400
    assert MESSAGE in res.content.decode()
    assert DataSubjectRequest.objects.count() == 0 and OutboundEmail.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["email", "agent_email"])
def test_web_form_refuses_control_characters_in_addresses(client, field):
    # A quoted local part may hold control characters and still pass the address syntax check.
    extra = {
        "is_agent": "on",
        "agent_name": "Ann Agent",
        "agent_email": "agent@example.org",
        "agent_power_of_attorney": "on",
    }
    res = client.post("/", _form(**{**extra, field: '"a\x0bb"@example.org'}))
    assert res.status_code == 400 and MESSAGE in res.content.decode()
    assert DataSubjectRequest.objects.count() == 0


def _body(**overrides):
    body = {
        "type": "rectification",
        "regime": "gdpr",
        "email": "api@example.org",
        "full_name": "Api Person",
        "corrections": [{"field": "postal_code", "wrong": "1011", "correct": "1012"}],
        "agent": {"name": "Ann Agent", "email": "agent@example.org", "power_of_attorney": True},
    }
    body.update(overrides)
    return body


API_CASES = [
    ("full_name", {"full_name": "Alex\nExample"}),
    ("email", {"email": '"a\x0bb"@example.org'}),
    ("corrections.0.wrong", {"corrections": [{"field": "postal_code", "wrong": "10\r11", "correct": "1012"}]}),
    ("corrections.0.correct", {"corrections": [{"field": "postal_code", "correct": "10\u202812"}]}),
    ("agent.name", {"agent": {"name": "Ann\tAgent", "email": "agent@example.org", "power_of_attorney": True}}),
    ("agent.email", {"agent": {"name": "Ann", "email": '"x\x1b"@example.org', "power_of_attorney": True}}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("field,overrides", API_CASES, ids=[c[0] for c in API_CASES])
@pytest.mark.parametrize("door", ["public", "staff"])
def test_public_and_staff_api_refuse_them(api, staff_api, door, field, overrides):
    client, url, extra = (
        (api, "/api/v1/requests/", {})
        if door == "public"
        else (staff_api, "/api/v1/staff/requests/", {"channel": "phone"})
    )
    res = client.post(url, _body(**extra, **overrides), format="json")
    assert res.status_code == 400 and res["Content-Type"].startswith("application/problem+json")
    assert res.json()["errors"][field] == [MESSAGE]
    assert DataSubjectRequest.objects.count() == 0


@pytest.mark.django_db
def test_staff_api_assignee_is_single_line(staff_api):
    r = request_create()
    res = staff_api.post(f"/api/v1/staff/requests/{r.reference}/assign/", {"assignee": "olivia\nx"}, format="json")
    assert res.status_code == 400 and res.json()["errors"]["assignee"] == [MESSAGE]


SERVICE_CASES = [
    ("full_name", dict(full_name="Alex\nExample")),
    ("email", dict(email='"a\x0bb"@example.org')),
    (
        "agent_name",
        dict(intake=IntakeDetails(agent_name="A\x00B", agent_email="a@example.org", agent_power_of_attorney=True)),
    ),
    (
        "agent_email",
        dict(intake=IntakeDetails(agent_name="A", agent_email='"a\nb"@example.org', agent_power_of_attorney=True)),
    ),
    (
        "corrections",
        dict(
            request_type="rectification",
            intake=IntakeDetails(corrections=({"field": "postal_code", "wrong": "1011", "correct": "10\n12"},)),
        ),
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("field,kwargs", SERVICE_CASES, ids=[c[0] for c in SERVICE_CASES])
def test_the_service_refuses_them_whoever_calls_it(field, kwargs):
    args = dict(request_type="access", regime="ccpa", email="svc@example.org", full_name="Svc Person")
    args.update(kwargs)
    with pytest.raises(InvalidInput) as exc:
        request_submit(**args)
    assert exc.value.field == field and exc.value.message == MESSAGE
    assert DataSubjectRequest.objects.count() == 0


@pytest.fixture
def awaiting_identity(db):
    DemoCustomer.objects.create(email="sam@example.org", full_name="Sam Sample", postal_code="1011 AB")
    r = request_create(email="sam@example.org", request_type="access", regime="ccpa")
    r.email_verified_at = r.received_at
    r.save(update_fields=["email_verified_at"])
    return r


@pytest.mark.parametrize("field", ["full_name", "phone", "postal_code", "customer_number"])
def test_identity_claims_are_single_line_on_the_page_and_in_the_service(client, awaiting_identity, field):
    r = awaiting_identity
    res = client.post(f"/r/{r.public_token}/", {"action": "identity", field: "1011\nAB"})
    assert res.status_code == 400 and MESSAGE in res.content.decode()
    with pytest.raises(InvalidInput) as exc:
        verification.identity_match_submit(request=r, claims={field: "1011\rAB"})
    assert exc.value.field == field
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION and not r.events.filter(event_type="identity_checked").exists()


def test_the_declaration_signature_is_single_line(client, db):
    DemoCustomer.objects.create(
        email="sam@example.org", full_name="Sam Sample", postal_code="1011 AB", phone="0612345678"
    )
    r = request_create(email="sam@example.org", request_type="access_specific", regime="ccpa")
    r.email_verified_at = r.received_at
    r.save(update_fields=["email_verified_at"])
    res = client.post(
        f"/r/{r.public_token}/",
        {
            "action": "identity",
            "full_name": "Sam Sample",
            "postal_code": "1011 AB",
            "phone": "0612345678",
            "declared": "on",
            "declaration_name": "Sam\nSample",
        },
    )
    assert res.status_code == 400 and MESSAGE in res.content.decode()
    with pytest.raises(InvalidInput) as exc:
        verification.identity_match_submit(
            request=r, claims={"postal_code": "1011 AB"}, declaration_name="Sam\u2028Sample", declared=True
        )
    assert exc.value.field == "declaration_name"
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION

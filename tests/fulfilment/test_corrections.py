"""A correction run end to end, on real systems: an `sql` shop (SQLite, and PostgreSQL under
DATABASE_URL) and a `django` system on the product's own database. The one door reads the
current values of the declared fields (nothing changes), the officer decides each correction
with a reason (API and dashboard, bad bodies, roles), the accepted ones are applied through the
instruction channel and read back, recipients are passed on (Art 19), and the requester gets the
answer and, for CCPA, may leave a statement."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from dsr.event_types import EventType
from dsr.fulfilment.connectors.base import INSTRUCTION_HANDLERS, Instructed
from dsr.fulfilment.models import (
    Correction,
    CorrectionDecision,
    CorrectionStatement,
    FulfilmentRun,
    RunState,
    SystemStatus,
)
from dsr.fulfilment.services import corrections, instructions, runs
from dsr.models import DataSubjectRequest
from dsr.services.audit import Actor
from dsr.services.intake import IntakeDetails
from dsr.services.retention import retention_purge
from tests.factories import officer_create, staff_token_key
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.correction_shop import correction_shop, shop_backend, system_yaml  # noqa: F401
from tests.support.shop.models import Customer

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
ACCOUNTS = """
  - name: accounts
    owner: accounts@example.com
    kind: django
    recipients:
      - name: Mail house
        category: Service providers (printing)
    collections:
      - name: customer
        model: shop.Customer
        identities: {email: email}
        fields:
          id: none
          email: {category: identifiers, corrects: email}
          name: {category: identifiers, corrects: full_name}
          phone: {category: identifiers, corrects: phone}
          created_at: none
"""
SHOP_RECIPIENTS = """
- name: Parcel carriers
  category: Service providers (delivery)
"""
ASKED = (
    {"field": "full_name", "wrong": "Ann", "correct": "Ann Lindqvist"},
    {"field": "phone", "wrong": "+1 555 0101", "correct": "+46 8 123"},
    {"field": "postal_code", "wrong": "94103", "correct": "94110"},  # no field of the map holds it
)


@pytest.fixture
def systems(correction_shop, settings, tmp_path, monkeypatch):  # noqa: F811
    path = tmp_path / "datamap.yaml"
    path.write_text("systems:\n" + system_yaml(correction_shop.schema, recipients=SHOP_RECIPIENTS) + ACCOUNTS)
    settings.DSR_DATAMAP = str(path)
    Customer.objects.create(email="ann@example.com", name="Ann", phone="+1 555 0101", created_at=NOW)
    Customer.objects.create(email="bob@example.com", name="Bob", phone="+1 555 0102", created_at=NOW)
    queued: dict[str, list[int]] = {"read": [], "system": [], "instruction": []}
    monkeypatch.setitem(corrections._queue, "read", lambda pk: queued["read"].append(pk))
    monkeypatch.setattr(instructions, "_queue", [lambda pk, countdown: queued["instruction"].append(pk)])
    monkeypatch.setitem(runs._queue, "system", lambda pk, countdown=0: queued["system"].append(pk))
    # No recipients' teller unless a test registers one (the real one: test_recipients_told.py).
    monkeypatch.setattr(corrections, "_recipients_tell", [])
    return {"shop": correction_shop, "queued": queued}


def _request(officer, *, asked=ASKED, evidence=(), **kwargs):
    return verified_request(
        officer=officer,
        request_type="rectification",
        email="ann@example.com",
        intake=IntakeDetails(corrections=asked, documents=tuple(("evidence", e) for e in evidence)),
        **kwargs,
    )


def _read(queued, capture):
    """Run every queued task (reading, and the instructions they lead to), like a worker would."""
    while queued["read"] or queued["instruction"]:
        name = "read" if queued["read"] else "instruction"
        pk = queued[name].pop(0)
        with capture(execute=True):
            if name == "read":
                corrections.correction_system_read(system_run_id=pk)
            else:
                instructions.instruction_execute(system_run_id=pk)


def _started(officer, systems, capture, **kwargs):
    req = _request(officer, **kwargs)
    with capture(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    _read(systems["queued"], capture)
    run.refresh_from_db()
    return req, run


def _events(req, kind):
    return [e for e in req.events.order_by("seq") if e.event_type == kind]


def _by_field(run):
    return {c.field: c for c in Correction.objects.filter(run=run)}


# --- Reading: one door, nothing changes ------------------------------------------------------------


def test_the_start_reads_the_declared_fields_per_system_and_waits_for_the_officer(
    officer, systems, django_capture_on_commit_callbacks
):
    shop = systems["shop"]
    before = (shop.rows("customer"), shop.rows("contact"), list(Customer.objects.values()))
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    assert run.package_kind == "correction" and run.state == RunState.AWAITING_APPROVAL
    assert (shop.rows("customer"), shop.rows("contact"), list(Customer.objects.values())) == before
    assert systems["queued"]["system"] == []  # no access search ran
    found = _by_field(run)
    ann = Customer.objects.get(email="ann@example.com")
    assert found["full_name"].found == [
        {"system": "shop", "collection": "customer", "key": 1, "field": "name", "value": "Ann"},
        {"system": "accounts", "collection": "customer", "key": ann.pk, "field": "name", "value": "Ann"},
    ]
    phones = sorted((f["system"], f["collection"], f["key"], f["value"]) for f in found["phone"].found)
    assert phones == [
        ("accounts", "customer", ann.pk, "+1 555 0101"),
        ("shop", "contact", 10, "+1 555 0101"),
        ("shop", "contact", 11, "+1 555 0109"),
    ]
    assert found["postal_code"].declared == [] and found["postal_code"].found == []
    assert found["phone"].declared == ["shop.contact.phone", "accounts.customer.phone"]
    assert {s.system: s.status for s in run.systems.all()} == {"shop": "planned", "accounts": "planned"}
    read = _events(req, EventType.CORRECTION_VALUES_READ)
    assert {e.data["system"]: e.data["counts"] for e in read} == {
        "shop": {"customer": 1, "contact": 2},
        "accounts": {"customer": 1},
    }
    assert "Ann" not in str([e.data for e in read])  # the values are shown to staff, never put on the chain


def test_a_redelivered_reading_task_reads_nothing_twice(officer, systems, django_capture_on_commit_callbacks):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    for system_run in run.systems.all():
        with django_capture_on_commit_callbacks(execute=True):
            corrections.correction_system_read(system_run_id=system_run.pk)
    assert len(_events(req, EventType.CORRECTION_VALUES_READ)) == 2
    assert len(_by_field(run)["phone"].found) == 3


def test_a_system_that_cannot_be_read_fails_visibly_and_the_others_are_read(
    officer, systems, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.delenv("DSR_TEST_CORRECT_DSN")
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    shop = run.systems.get(system="shop")
    assert shop.status == SystemStatus.FAILED and "DSR_TEST_CORRECT_DSN" in shop.error
    assert run.systems.get(system="accounts").status == SystemStatus.PLANNED
    assert run.state == RunState.AWAITING_APPROVAL
    assert _events(req, EventType.CORRECTION_READ_FAILED)[0].data["system"] == "shop"


def test_a_request_without_field_corrections_or_of_another_kind_is_refused(officer, systems):
    req = verified_request(officer=officer, request_type="rectification", details="My address is wrong.")
    with pytest.raises(runs.TransitionNotAllowed, match="lists no field-by-field corrections"):
        runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    assert not FulfilmentRun.objects.filter(request=req).exists()


# --- The officer's decisions: API ------------------------------------------------------------------


def _decide_url(req):
    return f"/api/v1/staff/requests/{req.reference}/fulfilment/corrections/decide/"


def test_get_fulfilment_carries_the_corrections_beside_the_values(
    officer, staff_api, systems, django_capture_on_commit_callbacks
):
    bill = SimpleUploadedFile("utility-bill.pdf", b"%PDF-1.4 a bill", content_type="application/pdf")
    req, run = _started(officer, systems, django_capture_on_commit_callbacks, evidence=[bill])
    body = staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()
    assert body["state"] == "awaiting_approval" and body["plan"] is None
    items = body["corrections"]
    assert [(c["position"], c["field"], c["correct"], c["decision"]) for c in items] == [
        (1, "full_name", "Ann Lindqvist", "pending"),
        (2, "phone", "+46 8 123", "pending"),
        (3, "postal_code", "94110", "pending"),
    ]
    assert items[2]["applicable"] is False and items[0]["applicable"] is True
    [document] = req.documents.all()
    url = reverse("dsr:staff-document", args=[req.reference, document.pk])
    assert items[0]["evidence"] == [{"id": document.pk, "name": "utility-bill.pdf", "url": url}]
    client = Client()
    client.login(username=officer.username, password=PASSWORD)
    assert f'href="{url}"' in client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert {"system": "shop", "collection": "contact", "key": 11, "field": "phone", "value": "+1 555 0109"} in items[1][
        "found"
    ]
    assert staff_api.get("/api/v1/staff/requests/NOPE-1/fulfilment/").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field", "detail"),
    [
        ({"id": 1, "decision": "accept"}, 400, None, "The body must be a JSON list."),
        ([], 400, "non_field_errors", "Send a JSON list of decisions"),
        (["accept"], 400, "0", "Item 1 is not an object"),
        ([{"id": "one", "decision": "accept"}], 400, "0.id", "'id' is the number of a correction"),
        ([{"id": 999999, "decision": "accept"}], 400, "0.id", "999999 is not a correction of this request"),
        ([{"id": "FIRST", "decision": "maybe"}], 400, "0.decision", '\'decision\' is "accept" or "reject"'),
        ([{"id": "FIRST", "decision": "reject"}], 400, "0.reason", "a rejection needs a reason"),
        ([{"id": "FIRST", "decision": "reject", "reason": "   "}], 400, "0.reason", "a rejection needs a reason"),
        ([{"id": "FIRST", "decision": "accept", "why": "x"}], 400, "0", "unknown field why"),
        (
            [{"id": "FIRST", "decision": "accept"}, {"id": "FIRST", "decision": "accept"}],
            400,
            "1.id",
            "decided twice",
        ),
        ([{"id": "THIRD", "decision": "accept"}], 400, "0.decision", "the data map declares no field that holds"),
    ],
)
def test_a_bad_body_is_a_problem_naming_the_item_and_field_and_changes_nothing(
    officer, staff_api, systems, django_capture_on_commit_callbacks, body, status, field, detail
):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    ids = {c.position: c.pk for c in Correction.objects.filter(run=run)}

    def fill(value):
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: {"FIRST": ids[1], "THIRD": ids[3]}.get(v, v) for k, v in value.items()}
        return value

    decided_before = len(_events(req, EventType.CORRECTIONS_DECIDED))
    response = staff_api.post(_decide_url(req), fill(body), format="json")
    assert response.status_code == status and response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert detail in problem["detail"]
    if field is not None:
        assert list(problem["errors"]) == [field]
    assert set(Correction.objects.filter(run=run).values_list("decision", flat=True)) == {"pending"}
    assert len(_events(req, EventType.CORRECTIONS_DECIDED)) == decided_before


def test_decisions_are_recorded_one_by_one_and_only_officers_decide(
    officer, staff_api, systems, django_capture_on_commit_callbacks
):
    req = _request(officer)
    refused = staff_api.post(_decide_url(req), [{"id": 1, "decision": "accept"}], format="json")
    assert refused.status_code == 409 and "No corrections of" in refused.json()["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    _read(systems["queued"], django_capture_on_commit_callbacks)
    first = _by_field(run)["full_name"]
    reviewer = officer_create(username="rita", email="rita@company.example", role="reviewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(reviewer)}")
    assert client.post(_decide_url(req), [{"id": first.pk, "decision": "accept"}], format="json").status_code == 403
    assert APIClient().post(_decide_url(req), [{"id": first.pk, "decision": "accept"}], format="json").status_code in (
        401,
        403,
    )
    first.refresh_from_db()
    assert first.decision == CorrectionDecision.PENDING
    response = staff_api.post(_decide_url(req), [{"id": first.pk, "decision": "accept", "reason": ""}], format="json")
    assert response.status_code == 200
    assert (
        response.json()["corrections"][0]["decision"] == "accepted" and response.json()["state"] == "awaiting_approval"
    )
    first.refresh_from_db()
    assert first.decision == CorrectionDecision.ACCEPTED and first.decided_by and first.decided_at
    [event] = _events(req, EventType.CORRECTIONS_DECIDED)
    assert event.data["complete"] is False and event.data["decisions"][0]["decision"] == "accepted"


# --- The officer's decisions: dashboard ------------------------------------------------------------


def test_the_panel_shows_each_correction_beside_the_values_escaped_and_decides_by_form(
    officer, client, systems, django_capture_on_commit_callbacks
):
    asked = ({"field": "full_name", "wrong": "Ann", "correct": "<script>alert(1)</script>"}, *ASKED[1:])
    req, run = _started(officer, systems, django_capture_on_commit_callbacks, asked=asked)
    client.login(username=officer.username, password=PASSWORD)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Corrections across the systems" in page and "Save the decisions" in page
    assert "shop.contact.phone (row 11): “+1 555 0109”" in page
    assert "The data map declares no field that holds postal_code" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    ids = {c.field: c.pk for c in Correction.objects.filter(run=run)}
    response = client.post(
        f"/dashboard/fulfilment/requests/{req.reference}/corrections/decide/",
        {f"decision_{ids['postal_code']}": "reject", f"reason_{ids['postal_code']}": ""},
    )
    assert response.status_code == 302
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "a rejection needs a reason" in page
    assert Correction.objects.get(pk=ids["postal_code"]).decision == "pending"
    client.post(
        f"/dashboard/fulfilment/requests/{req.reference}/corrections/decide/",
        {f"decision_{ids['postal_code']}": "reject", f"reason_{ids['postal_code']}": "We hold no postal code."},
    )
    rejected = Correction.objects.get(pk=ids["postal_code"])
    assert (rejected.decision, rejected.reason) == ("rejected", "We hold no postal code.")


def test_a_reviewer_sees_the_corrections_but_cannot_decide(
    officer, client, systems, django_capture_on_commit_callbacks
):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    reviewer = officer_create(username="rita", email="rita@company.example", role="reviewer")
    client.login(username=reviewer.username, password=PASSWORD)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Corrections across the systems" in page and "Save the decisions" not in page
    pk = Correction.objects.filter(run=run).first().pk
    response = client.post(
        f"/dashboard/fulfilment/requests/{req.reference}/corrections/decide/", {f"decision_{pk}": "accept"}
    )
    assert response.status_code == 403
    assert Correction.objects.get(pk=pk).decision == "pending"


# --- Applied through the instruction channel, read back, passed on ----------------------------------


def _decide_all(req, run, officer, capture, queued, *, reject_phone=False):
    by = _by_field(run)
    decisions = [
        {"id": by["full_name"].pk, "decision": "accept", "reason": "Matches the passport copy."},
        {"id": by["phone"].pk, "decision": "reject" if reject_phone else "accept", "reason": "No evidence given."},
        {"id": by["postal_code"].pk, "decision": "reject", "reason": "We do not hold a postal code."},
    ]
    with capture(execute=True):
        corrections.corrections_decide(request=req, decisions=decisions, actor=Actor.staff(officer))
    _read(queued, capture)
    run.refresh_from_db()
    return run


def test_accepted_corrections_are_applied_in_each_system_read_back_and_passed_on(
    officer, systems, django_capture_on_commit_callbacks
):
    told = []
    corrections.corrections_recipients_register(lambda run, sent: told.append((run.pk, sent)))
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    run = _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    shop = systems["shop"]
    assert run.state == RunState.DONE
    assert shop.rows("customer")[0] == {
        "id": 1, "email": "ann@example.com", "name": "Ann Lindqvist", "city": "Oslo", "edits": 1,
    }  # fmt: skip
    assert shop.rows("customer")[1]["name"] == "Bob" and shop.rows("customer")[1]["edits"] == 0
    assert [r["phone"] for r in shop.rows("contact")] == ["+46 8 123", "+46 8 123", "+1 555 0102"]
    ann = Customer.objects.get(email="ann@example.com")
    assert (ann.name, ann.phone) == ("Ann Lindqvist", "+46 8 123")
    assert Customer.objects.get(email="bob@example.com").name == "Bob"
    by_system = {s.system: s for s in run.systems.all()}
    assert by_system["shop"].status == SystemStatus.DONE and by_system["shop"].instructed["counts"] == {
        "customer": 1, "contact": 2,
    }  # fmt: skip
    assert by_system["shop"].instruction["items"][0] == {
        "collection": "customer", "key": 1, "field": "name", "value": "Ann Lindqvist",
    }  # fmt: skip
    assert by_system["accounts"].status == SystemStatus.DONE and by_system["accounts"].confirmed_at
    # Art 19: the hook got each corrected system's instruction, and the timeline says what was passed on.
    [(run_id, sent)] = told
    assert run_id == run.pk and set(sent) == {"shop", "accounts"} and sent["shop"].action == "correct"
    [passed] = _events(req, EventType.CORRECTIONS_PASSED_ON)
    assert passed.data["systems"] == {"shop": ["Parcel carriers"], "accounts": ["Mail house"]}
    assert passed.data["fields"] == {
        "shop": ["contact.phone", "customer.name"],
        "accounts": ["customer.name", "customer.phone"],
    }
    assert passed.data["told"] is True and "Lindqvist" not in str(passed.data)
    assert len(_events(req, EventType.INSTRUCTION_CONFIRMED)) == 2
    decided = _events(req, EventType.CORRECTIONS_DECIDED)
    assert decided[-1].data["complete"] is True


def test_without_a_propagation_registered_the_timeline_says_nobody_was_told(
    officer, systems, django_capture_on_commit_callbacks
):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    [passed] = _events(req, EventType.CORRECTIONS_PASSED_ON)
    assert passed.data["told"] is False


def test_a_read_back_mismatch_fails_that_system_whole_and_flags_the_request(
    officer, systems, django_capture_on_commit_callbacks
):
    shop = systems["shop"]
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    shop.uppercase_names()
    before = (shop.rows("customer"), shop.rows("contact"))
    run = _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    assert run.state == RunState.FAILED
    assert (shop.rows("customer"), shop.rows("contact")) == before  # the phones were rolled back too
    failed = run.systems.get(system="shop")
    assert failed.status == SystemStatus.FAILED and "read back a different value" in failed.error
    assert failed.attempts == 1  # not retried: a mismatch will not pass
    assert Customer.objects.get(email="ann@example.com").name == "Ann Lindqvist"  # the other system is done
    req.refresh_from_db()
    assert req.flagged_at and "Correction failed in shop" in req.flag_reason
    with pytest.raises(runs.TransitionNotAllowed, match="not applied yet"):
        corrections.correction_answer_send(request=req, actor=Actor.staff(officer))


def test_a_redelivered_instruction_task_corrects_nothing_twice(officer, systems, django_capture_on_commit_callbacks):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    run = _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    for system_run in run.systems.all():
        with django_capture_on_commit_callbacks(execute=True):
            instructions.instruction_execute(system_run_id=system_run.pk)
    assert systems["shop"].rows("customer")[0]["edits"] == 1  # one UPDATE of Ann's row, ever
    assert len(_events(req, EventType.INSTRUCTION_CONFIRMED)) == 2
    assert len(_events(req, EventType.CORRECTIONS_PASSED_ON)) == 1
    assert len(_events(req, EventType.FULFILMENT_FINISHED)) == 1
    with pytest.raises(corrections.CorrectionsNotDecidable):
        corrections.corrections_decide(
            request=req,
            decisions=[{"id": _by_field(run)["phone"].pk, "decision": "reject", "reason": "changed my mind"}],
            actor=Actor.staff(officer),
        )


def test_every_correction_rejected_changes_nothing_and_the_answer_is_a_refusal_with_reasons(
    officer, systems, django_capture_on_commit_callbacks, mailoutbox
):
    shop = systems["shop"]
    before = shop.rows("customer")
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    decisions = [{"id": c.pk, "decision": "reject", "reason": f"Reason {c.position}"} for c in _by_field(run).values()]
    with django_capture_on_commit_callbacks(execute=True):
        corrections.corrections_decide(request=req, decisions=decisions, actor=Actor.staff(officer))
    run.refresh_from_db()
    assert run.state == RunState.DONE and systems["queued"]["instruction"] == []
    assert shop.rows("customer") == before
    with django_capture_on_commit_callbacks(execute=True):
        corrections.correction_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    assert req.status == "denied" and "Name: not corrected. Our reason: Reason 1" in req.response_message
    assert "statement of up to 250 words" in req.response_message  # CCPA §7023(f)


# --- The requester's answer and statement ----------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "regime", "expected"),
    [
        ("en", "ccpa", ["Name: corrected in accounts, shop.", "Phone number: not corrected. Our reason: No evidence given.",
                        "statement of up to 250 words"]),
        ("sv", "ccpa", ["Namn: rättat i accounts, shop.", "Telefonnummer: inte rättat. Vårt skäl: No evidence given.",
                        "250 ord"]),
        ("nl", "gdpr", ["Naam: gecorrigeerd in accounts, shop.", "Telefoonnummer: niet gecorrigeerd. Onze reden: No evidence given.",
                        "toezichthoudende autoriteit"]),
    ],
)  # fmt: skip
def test_the_answer_says_what_was_corrected_where_and_why_not_in_the_requesters_language(
    officer, systems, django_capture_on_commit_callbacks, mailoutbox, language, regime, expected
):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks, language=language, regime=regime)
    _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"], reject_phone=True)
    with django_capture_on_commit_callbacks(execute=True):
        corrections.correction_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    assert req.status == "completed" and req.outcome == "complied_in_part"
    for text in expected:
        assert text in req.response_message, (text, req.response_message)
    assert "Lindqvist" not in req.response_message and "+46" not in req.response_message
    assert any(expected[0] in message.body for message in mailoutbox), [m.body for m in mailoutbox]
    if regime == "gdpr":
        assert "250" not in req.response_message


def _answered(officer, systems, capture, **kwargs):
    req, run = _started(officer, systems, capture, **kwargs)
    _decide_all(req, run, officer, capture, systems["queued"], reject_phone=True)
    with capture(execute=True):
        corrections.correction_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    return req


def test_a_ccpa_requester_sends_a_statement_kept_escaped_and_on_the_timeline(
    officer, client, systems, django_capture_on_commit_callbacks
):
    req = _answered(officer, systems, django_capture_on_commit_callbacks)
    status = f"/r/{req.public_token}/"
    page = client.get(status).content.decode()
    assert "Phone number: not corrected. Our reason: No evidence given." in page  # the answer, on the status page
    assert "Your statement about the correction" in page and "Send my statement" in page
    too_long = " ".join(["word"] * 251)
    client.post(f"{status}statement/", {"statement": too_long})
    page = client.get(status).content.decode()
    assert "at most 250 words; yours has 251" in page
    assert not CorrectionStatement.objects.filter(request=req).exists()
    text = "My phone is <b>+46 8 123</b>; see my bill.\n<script>alert(1)</script>"
    assert client.post(f"{status}statement/", {"statement": text}).status_code == 302
    statement = CorrectionStatement.objects.get(request=req)
    assert statement.text == text.strip() and statement.words == 10
    [event] = _events(req, EventType.CORRECTION_STATEMENT_RECEIVED)
    assert event.data == {"words": 10, "text": statement.text} and event.actor_type == "requester"
    page = client.get(status).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;+46 8 123&lt;/b&gt;" in page and "Send my statement" not in page
    client.post(f"{status}statement/", {"statement": "A second one"})
    assert CorrectionStatement.objects.filter(request=req).count() == 1
    client.login(username=officer.username, password=PASSWORD)
    staff_page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "The requester&#x27;s statement" in staff_page or "The requester's statement" in staff_page
    assert "<script>alert(1)</script>" not in staff_page and "&lt;script&gt;alert(1)&lt;/script&gt;" in staff_page


def test_no_statement_form_for_gdpr_or_before_the_answer_or_without_a_rejection(
    officer, client, systems, django_capture_on_commit_callbacks
):
    req = _answered(officer, systems, django_capture_on_commit_callbacks, regime="gdpr")
    assert "Send my statement" not in client.get(f"/r/{req.public_token}/").content.decode()
    response = client.post(f"/r/{req.public_token}/statement/", {"statement": "I disagree."})
    assert response.status_code == 302 and not CorrectionStatement.objects.exists()
    assert _events(req, EventType.CORRECTION_STATEMENT_RECEIVED) == []
    with pytest.raises(runs.TransitionNotAllowed):
        corrections.correction_statement_submit(request=req, text="I disagree.")
    assert client.post("/r/not-a-token/statement/", {"statement": "x"}).status_code == 404


def test_the_values_read_are_cleared_when_the_request_closes_and_a_purge_takes_the_statement(
    officer, client, systems, django_capture_on_commit_callbacks
):
    req = _answered(officer, systems, django_capture_on_commit_callbacks)
    run = corrections.latest_correction_run(req)
    assert [c.found for c in Correction.objects.filter(run=run)] == [[], [], []]  # needed for the decision only
    assert Correction.objects.get(run=run, field="phone").reason == "No evidence given."  # the record stays
    corrections.correction_statement_submit(request=req, text="The phone number is mine.")
    now = timezone.now()
    DataSubjectRequest.objects.filter(pk=req.pk).update(
        received_at=now - timedelta(days=2 * 365 + 25), closed_at=now - timedelta(days=2 * 365 + 5)
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = retention_purge()
    assert report.requests_purged == 1
    assert not CorrectionStatement.objects.exists() and not Correction.objects.exists()


def test_a_system_that_answers_later_gets_the_same_instruction_through_the_same_channel(
    officer, systems, django_capture_on_commit_callbacks, settings, monkeypatch
):
    """A manual system declaring the field is told like any other (its handler belongs to its own
    module; here one that asks the owner and waits), and the run finishes on its confirmation."""
    path = settings.DSR_DATAMAP
    with open(path, "a") as f:
        f.write(MANUAL)
    told = []

    def ask_owner(connector, subject, instruction):
        told.append((connector.system.name, instruction))
        return Instructed(confirmed=False, pending="asked the owner")

    monkeypatch.setitem(INSTRUCTION_HANDLERS, ("manual", "correct"), ask_owner)
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    assert not run.systems.filter(system="crm").exists()  # its values are not read: it answers later
    run = _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    [(name, instruction)] = told
    assert name == "crm" and instruction.items == (
        {"collection": "leads", "key": None, "field": "name", "value": "Ann Lindqvist"},
    )
    assert "leads.name: Ann Lindqvist" in instruction.note
    crm = run.systems.get(system="crm")
    assert crm.status == SystemStatus.WAITING and run.state == RunState.RUNNING
    with django_capture_on_commit_callbacks(execute=True):
        instructions.instruction_confirm(system_run_id=crm.pk, counts={"leads": 1}, by="owner")
    run.refresh_from_db()
    assert run.state == RunState.DONE
    with django_capture_on_commit_callbacks(execute=True):
        corrections.correction_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    assert "Name: corrected in accounts, crm, shop." in req.response_message


MANUAL = """
  - name: crm
    owner: sales@example.com
    kind: manual
    collections:
      - name: leads
        primary_key: email
        identities: {email: email}
        fields:
          email: {category: identifiers}
          name: {category: identifiers, corrects: full_name}
"""


def test_a_failed_system_told_again_is_corrected_then_every_system_is_passed_on_once(
    officer, client, staff_api, systems, django_capture_on_commit_callbacks
):
    shop = systems["shop"]
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    shop.uppercase_names()
    run = _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    assert run.state == RunState.FAILED
    # Nothing is passed on while a system failed: the recipients hear once, when all are corrected.
    assert _events(req, EventType.CORRECTIONS_PASSED_ON) == []
    retell = f"/api/v1/staff/requests/{req.reference}/fulfilment/corrections/systems/accounts/retell/"
    assert staff_api.post(retell).status_code == 409  # accounts did not fail
    # The generic Retry of a system tells a correction's system again too (never a search).
    retry = f"/api/v1/staff/requests/{req.reference}/fulfilment/systems/accounts/retry/"
    assert staff_api.post(retry).status_code == 409 and systems["queued"]["system"] == []
    client.login(username=officer.username, password=PASSWORD)
    assert "Tell shop again" in client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    shop.execute("DROP TRIGGER name_upper" + ("" if shop.backend == "sqlite" else f" ON {shop.table('customer')}"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/dashboard/fulfilment/requests/{req.reference}/corrections/systems/shop/retell/")
    assert response.status_code == 302
    _read(systems["queued"], django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE and shop.rows("customer")[0]["name"] == "Ann Lindqvist"
    passed = _events(req, EventType.CORRECTIONS_PASSED_ON)
    assert [sorted(e.data["systems"]) for e in passed] == [["accounts", "shop"]]


def test_a_map_changed_since_the_values_were_read_refuses_the_last_decision_and_keeps_none(
    officer, systems, django_capture_on_commit_callbacks, settings
):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    with open(settings.DSR_DATAMAP, "a") as f:
        f.write("# edited\n")
    with pytest.raises(corrections.CorrectionsNotDecidable, match="data map changed"):
        _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    assert set(Correction.objects.filter(run=run).values_list("decision", flat=True)) == {"pending"}
    assert systems["queued"]["instruction"] == [] and systems["shop"].rows("customer")[0]["name"] == "Ann"


def test_the_status_reads_the_corrections_in_a_fixed_number_of_queries(
    officer, staff_api, systems, django_capture_on_commit_callbacks
):
    req, run = _started(officer, systems, django_capture_on_commit_callbacks, asked=ASKED[:1])
    staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/")  # the token's first use is recorded once
    with CaptureQueriesContext(connection) as one:
        assert len(staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()["corrections"]) == 1
    Correction.objects.bulk_create(
        [Correction(run=run, position=p, field="phone", correct=f"+46 8 12{p}") for p in range(2, 12)]
    )
    with CaptureQueriesContext(connection) as eleven:
        assert len(staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()["corrections"]) == 11
    assert len(eleven.captured_queries) == len(one.captured_queries)

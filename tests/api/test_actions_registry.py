"""One action table (dsr.actions) drives the API and the dashboard: the same actions in both doors,
each reaching the same service with the same arguments and writing the same event; the states an
action is offered in are exactly those its service accepts; a refused action is not offered on the
page and answers 409 in the API; both doors validate each field alike; the schema documents every
action with its own body."""

import ast
import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from dsr import actions
from dsr.api.serializers import action_serializer
from dsr.dashboard import action_form
from dsr.errors import TransitionNotAllowed
from dsr.models import TYPES_WITHOUT_VERIFICATION, AuditEvent, DataSubjectRequest, Organisation, OutboundEmail, Status
from dsr.services.audit import Actor
from dsr.services.intake import IntakeDetails
from tests.factories import officer_create, request_create
from tests.support import ROOT

pytestmark = pytest.mark.django_db

S = Status
PASSWORD = "correct horse battery"
STAFF = "/api/v1/staff/requests/"

# A valid input for each action, as a client would send it.
SAMPLE = {
    "verify": {"note": "Customer number and postcode match."},
    "ask": {"message": "Which account did you use?", "for_identity": False, "id_document": False},
    "extend": {"reason": "Your data is in five systems."},
    "approve": {"note": ""},
    "complete": {"message": "We sent you everything we hold.", "outcome": "complied"},
    "deny": {"reason_category": "exempt", "message": "We must keep this data under a legal hold."},
    "cancel": {"reason": "Withdrawn by the requester."},
    "reopen": {"reason": "The requester asked again."},
    "message": {"message": "We are still searching two systems."},
    "assign": {"assignee": "olivia"},
    "note": {"text": "Called them; they confirmed the order."},
}


def test_every_action_has_a_sample():
    assert set(SAMPLE) == set(actions.ACTIONS)


# --- Building a request in each status, through the services ----------------------------------------


def _step(name: str, r, actor):
    entry = actions.ACTIONS[name]
    return entry.run(request=r, actor=actor, arguments=entry.prepare(SAMPLE[name]))


# How each status is reached from a fresh submission. A type that needs verification starts
# awaiting it; an opt-out starts in progress (§7060(b)) and never awaits verification.
PATHS = {
    True: {
        S.AWAITING_VERIFICATION: [],
        S.VERIFIED: ["verify"],
        S.IN_PROGRESS: ["verify", "approve"],
        S.AWAITING_REQUESTER: ["ask"],
        S.COMPLETED: ["verify", "complete"],
        S.DENIED: ["deny"],
        S.CANCELLED: ["cancel"],
    },
    False: {
        S.IN_PROGRESS: [],
        S.VERIFIED: ["ask", "verify"],
        S.AWAITING_REQUESTER: ["ask"],
        S.COMPLETED: ["complete"],
        S.DENIED: ["deny"],
        S.CANCELLED: ["cancel"],
    },
}
VARIANTS = [("access", "ccpa"), ("erasure", "gdpr"), ("opt_out_sale", "ccpa")]
CASES = [
    (request_type, regime, status)
    for request_type, regime in VARIANTS
    for status in [*PATHS[request_type not in TYPES_WITHOUT_VERIFICATION], S.RECEIVED, S.FORWARDED]
]


def _in_status(status: str, *, request_type: str, regime: str, officer) -> DataSubjectRequest:
    if status == S.FORWARDED:
        Organisation.objects.create(name="Acme", email_domain="acme.example", admin_contact_email="admin@acme.example")
        r = request_create(
            email="worker@acme.example",
            request_type=request_type,
            regime=regime,
            intake=IntakeDetails(relationship="org_user"),
        )
    else:
        r = request_create(email=f"{status}@example.org", request_type=request_type, regime=regime)
    if status == S.RECEIVED:
        # No request rests in `received` (submission moves it on at once); set it here so that the
        # table's first row is checked too.
        DataSubjectRequest.objects.filter(pk=r.pk).update(status=S.RECEIVED)
    elif status != S.FORWARDED:
        for name in PATHS[request_type not in TYPES_WITHOUT_VERIFICATION][status]:
            r = _step(name, r, Actor.staff(officer))
    r.refresh_from_db()
    assert r.status == status
    return r


class _Undo(Exception):
    pass


def _accepted(entry: actions.Action, r, actor) -> bool:
    """Whether the action's service goes through on `r` (undone at once: every action meets the same request)."""
    try:
        with transaction.atomic():
            entry.run(request=r, actor=actor, arguments=entry.prepare(SAMPLE[entry.name]))
            raise _Undo
    except _Undo:
        return True
    except TransitionNotAllowed:
        return False


# --- The table and the one door agree ---------------------------------------------------------------


@pytest.mark.parametrize("request_type,regime,status", CASES)
def test_an_action_is_listed_as_available_exactly_when_its_service_accepts_it(officer, request_type, regime, status):
    r = _in_status(status, request_type=request_type, regime=regime, officer=officer)
    listed = {a.name for a in actions.actions_available(r, officer)}
    accepted = {name for name, entry in actions.ACTIONS.items() if _accepted(entry, r, Actor.staff(officer))}
    assert listed == accepted, (
        f"{request_type}/{regime}, {status}: only listed {listed - accepted}, only done {accepted - listed}"
    )


def test_the_state_matrix_covers_every_state_and_each_action_is_refused_in_some():
    """The matrix above sees every status, and cannot pass by listing everything: each action but
    message, assign and note starts from only some states or has a guard of its own."""
    assert {status for _, _, status in CASES} == set(Status.values)
    state_free = {
        name
        for name, entry in actions.ACTIONS.items()
        if entry.allowed_from == actions.ALL_STATUSES and entry.refusal is None
    }
    assert state_free == {"message", "assign", "note"}
    assert all(entry.allowed_from for entry in actions.ACTIONS.values())


def test_extend_is_offered_only_before_the_original_deadline_and_only_once(officer, staff_api):
    """Extend's own rules beyond the state (CCPA §1798.130(a)(2)(A), GDPR Art 12(3)), read off the
    service's guard: after the original deadline, or once extended, it is neither offered nor done."""
    entry = actions.ACTIONS["extend"]
    late = request_create(email="late@example.org", received_at=timezone.now() - timedelta(days=60))
    fresh = request_create(email="fresh@example.org")
    assert entry.allows(fresh) and not entry.allows(late)
    assert not _accepted(entry, late, Actor.staff(officer))
    once = _step("extend", fresh, Actor.staff(officer))
    assert not entry.allows(once) and not _accepted(entry, once, Actor.staff(officer))
    for r in (late, once):
        assert staff_api.post(f"{STAFF}{r.reference}/extend/", SAMPLE["extend"], format="json").status_code == 409


# --- The same actions in both doors --------------------------------------------------------------


def test_the_api_and_the_dashboard_expose_the_same_actions(client, officer, api):
    from dsr.api import urls as api_urls

    api_routes = {
        p.name.removeprefix("staff-request-")
        for p in api_urls.urlpatterns
        if p.name.startswith("staff-request-") and p.name != "staff-request-detail"
    }
    schema = api.get("/api/schema/?format=json").json()
    operations = {
        op["operationId"].removeprefix("requests_")
        for ops in schema["paths"].values()
        for op in ops.values()
        if op["operationId"].startswith("requests_")
    }
    served = {a.name for a in actions.API_ACTIONS}
    assert api_routes == operations == served
    # The dashboard serves every entry; only the internal note is the dashboard's alone (reviewers
    # write notes; the staff API is for privacy officers).
    assert set(actions.ACTIONS) - served == {"note"}
    client.login(username="olivia", password=PASSWORD)
    r = request_create()
    for name in actions.ACTIONS:
        assert client.post(f"/dashboard/requests/{r.reference}/{name}/", {}).status_code != 404, name
    assert client.post(f"/dashboard/requests/{r.reference}/explode/", {}).status_code == 404
    assert set(actions.BULK_ACTIONS) == {"assign", "duplicate", "spam"}
    assert {b.action for b in actions.BULK_ACTIONS.values()} == {"assign", "cancel"}
    queue = client.get("/dashboard/").content.decode()
    assert re.findall(r'<option value="(\w+)">', queue.split('id="bulk_action"', 1)[1].split("</select>", 1)[0]) == [
        "assign",
        "duplicate",
        "spam",
    ]


# The status an action is tried from, and what it is done to, in the two-door test.
FROM = {
    "verify": [],
    "ask": [],
    "extend": [],
    "approve": ["verify"],
    "complete": ["verify"],
    "deny": [],
    "cancel": [],
    "reopen": ["cancel"],
    "message": [],
    "assign": [],
}


def _recording(monkeypatch, name: str, calls: list):
    """The entry with its service wrapped to record each call: a door that went round the table
    would record nothing."""
    entry = actions.ACTIONS[name]

    def service(*, request, actor, **arguments):
        calls.append((request.reference, actor.label, arguments))
        return entry.service(request=request, actor=actor, **arguments)

    monkeypatch.setitem(actions.ACTIONS, name, dataclasses.replace(entry, service=service))


def _written(r, events_before: int, emails_before: int):
    events = [
        (e.event_type, e.data, e.from_status, e.to_status, e.actor_label)
        for e in AuditEvent.objects.filter(request=r).order_by("seq")[events_before:]
    ]
    emails = [m.template for m in OutboundEmail.objects.filter(request=r).order_by("pk")[emails_before:]]
    return events, emails


def _form_data(name: str) -> dict:
    data = {f"{name}-{k}": ("on" if v is True else v) for k, v in SAMPLE[name].items() if v is not False}
    return data | {f"{name}-confirmed": "True"}


@pytest.mark.parametrize("name", [a.name for a in actions.API_ACTIONS])
def test_each_action_through_either_door_calls_the_same_service_and_writes_the_same_event(
    name, officer, staff_api, client, monkeypatch
):
    staff = Actor.staff(officer)
    by_api, by_page = (request_create(email=f"{door}@example.org") for door in ("api", "page"))
    for r in (by_api, by_page):
        for step in FROM[name]:
            _step(step, r, staff)
    counts = {r.pk: (r.events.count(), r.emails.count()) for r in (by_api, by_page)}
    calls: list = []
    _recording(monkeypatch, name, calls)

    res = staff_api.post(f"{STAFF}{by_api.reference}/{name}/", SAMPLE[name], format="json")
    assert res.status_code == 200, res.content
    client.login(username="olivia", password=PASSWORD)
    page = client.post(f"/dashboard/requests/{by_page.reference}/{name}/", _form_data(name))
    assert page.status_code == 302, page.content.decode()

    assert [(ref, label) for ref, label, _ in calls] == [(by_api.reference, "olivia"), (by_page.reference, "olivia")]
    assert calls[0][2] == calls[1][2]  # the same arguments, from the same input
    written = [_written(r, *counts[r.pk]) for r in (by_api, by_page)]
    assert written[0] == written[1]
    assert written[0][0], f"{name} wrote no event"
    by_api.refresh_from_db()
    by_page.refresh_from_db()
    assert (by_api.status, by_api.assignee_id, by_api.respond_by) == (
        by_page.status,
        by_page.assignee_id,
        by_page.respond_by,
    )


def test_the_internal_note_goes_through_its_entry_on_the_dashboard(officer, client, monkeypatch):
    r = request_create()
    calls: list = []
    _recording(monkeypatch, "note", calls)
    client.login(username="olivia", password=PASSWORD)
    assert client.post(f"/dashboard/requests/{r.reference}/note/", _form_data("note")).status_code == 302
    assert calls == [(r.reference, "olivia", {"text": SAMPLE["note"]["text"]})]
    assert r.events.get(event_type="internal_note").data == {"text": SAMPLE["note"]["text"]}


def test_the_tables_permission_is_checked_by_both_doors(officer, staff_api, client, monkeypatch):
    """An entry's permission, not the door, decides: one no officer holds shuts both doors."""
    r = request_create()
    monkeypatch.setitem(
        actions.ACTIONS, "message", dataclasses.replace(actions.ACTIONS["message"], permission="dsr.no_such_right")
    )
    res = staff_api.post(f"{STAFF}{r.reference}/message/", SAMPLE["message"], format="json")
    assert res.status_code == 403 and res["Content-Type"].startswith("application/problem+json")
    client.login(username="olivia", password=PASSWORD)
    assert client.post(f"/dashboard/requests/{r.reference}/message/", _form_data("message")).status_code == 403
    assert "message" not in {a.name for a in actions.actions_available(r, officer)}
    assert not r.events.filter(event_type="team_message").exists()


# --- A refused action: not offered, and 409 -----------------------------------------------------------


def _offered_on_page(client, r) -> set[str]:
    html = client.get(f"/dashboard/requests/{r.reference}/").content.decode()
    return set(re.findall(rf'<form method="post" action="/dashboard/requests/{r.reference}/(\w+)/"', html))


@pytest.mark.parametrize("status", [*PATHS[True], S.FORWARDED])
def test_an_action_the_state_refuses_is_not_offered_and_answers_409(status, officer, staff_api, client):
    r = _in_status(status, request_type="access", regime="ccpa", officer=officer)
    officer_create(username="rob", email="rob@company.example", role="reviewer")
    client.login(username="olivia", password=PASSWORD)
    offered = _offered_on_page(client, r)
    assert offered == {a.name for a in actions.actions_available(r, officer)}
    client.login(username="rob", password=PASSWORD)
    assert _offered_on_page(client, r) == {"note"}  # a reviewer reads and comments, in any state
    refused = [a.name for a in actions.API_ACTIONS if a.name not in offered]
    assert refused, f"every action is offered in {status}"
    for name in refused:
        before = (r.events.count(), r.emails.count())
        res = staff_api.post(f"{STAFF}{r.reference}/{name}/", SAMPLE[name], format="json")
        assert res.status_code == 409, (name, res.content)
        assert res["Content-Type"].startswith("application/problem+json") and res.json()["detail"]
        assert (r.events.count(), r.emails.count()) == before


def test_a_refused_action_posted_anyway_shows_its_form_with_why(officer, client):
    """A page loaded before someone else moved the request still posts: the refusal is shown on the
    action's own form, although the page no longer offers it."""
    r = request_create()
    client.login(username="olivia", password=PASSWORD)
    assert "approve" not in _offered_on_page(client, r)
    res = client.post(f"/dashboard/requests/{r.reference}/approve/", _form_data("approve"))
    html = res.content.decode()
    assert res.status_code == 400 and "only when it is verified" in html
    assert f'action="/dashboard/requests/{r.reference}/approve/"' in html
    r.refresh_from_db()
    assert r.status == S.AWAITING_VERIFICATION and not r.events.filter(event_type="approved").exists()


# --- Assign: one lookup, one wording, in every door ------------------------------------------------


@pytest.mark.parametrize(
    "username,message",
    [
        ("ghost", "There is no user 'ghost'."),
        ("rob", "Requests can only be assigned to an active privacy officer."),
    ],
)
def test_assign_answers_an_unknown_or_ineligible_user_in_the_same_words_in_every_door(
    officer, staff_api, client, username, message
):
    officer_create(username="rob", email="rob@company.example", role="reviewer")
    r = request_create()
    res = staff_api.post(f"{STAFF}{r.reference}/assign/", {"assignee": username}, format="json")
    assert (
        res.status_code == 400 and res.json()["detail"] == message and res.json()["errors"] == {"assignee": [message]}
    )
    client.login(username="olivia", password=PASSWORD)
    page = client.post(
        f"/dashboard/requests/{r.reference}/assign/", {"assign-assignee": username, "assign-confirmed": "True"}
    )
    assert page.status_code == 400 and escape(message) in page.content.decode()
    client.post("/dashboard/bulk/", {"selected": [r.reference], "bulk_action": "assign", "assignee": username})
    assert message in client.session["dashboard_notice"]
    assert "0 request(s) updated" in client.session["dashboard_notice"]
    r.refresh_from_db()
    assert r.assignee is None and not r.events.filter(event_type="assigned").exists()


# --- One definition of each field, in both doors -----------------------------------------------------


def _valid(spec):
    if isinstance(spec, actions.Flag):
        return False
    if isinstance(spec, actions.Choice):
        return spec.choices[0][0]
    return "x"


def _both(body: actions.Input, **values) -> tuple[bool, bool]:
    """Whether the API's serializer and the dashboard's form each accept the input (a valid one,
    with `values` instead)."""
    data = {spec.name: _valid(spec) for spec in body.fields} | values
    serializer = action_serializer(body)(data=data)
    form = action_form(body)({k: v for k, v in data.items() if v is not False})
    return serializer.is_valid(), form.is_valid()


INPUTS = list({id(a.input): a.input for a in actions.ACTIONS.values()}.values())


@pytest.mark.parametrize("body", INPUTS, ids=[b.name for b in INPUTS])
def test_both_doors_validate_each_field_alike(body):
    assert _both(body) == (True, True)
    for spec in body.fields:
        if isinstance(spec, actions.Text):
            assert _both(body, **{spec.name: "x" * (spec.max_length + 1)}) == (False, False), spec
            assert _both(body, **{spec.name: "x" * spec.max_length}) == (True, True), spec
            assert _both(body, **{spec.name: ""}) == (spec.blank, spec.blank), spec
            assert _both(body, **{spec.name: "two\nlines"}) == (not spec.one_line, not spec.one_line), spec
        elif isinstance(spec, actions.Choice):
            assert _both(body, **{spec.name: "no-such-choice"}) == (False, False), spec
            for value, _ in spec.choices:
                assert _both(body, **{spec.name: value}) == (True, True), (spec, value)
        else:
            assert _both(body, **{spec.name: True}) == (True, True), spec


# --- The schema --------------------------------------------------------------------------------------

# Today's contract: each action's operation id and body component (a rename breaks clients).
BODIES = {
    "verify": "VerifyIn",
    "approve": "VerifyIn",
    "ask": "MessageIn",
    "extend": "ExtendIn",
    "complete": "CompleteIn",
    "deny": "DenyIn",
    "cancel": "ReasonIn",
    "reopen": "ReasonIn",
    "message": "TeamMessageIn",
    "assign": "AssignIn",
}


def test_the_schema_documents_every_action_with_its_own_body(api):
    schema = api.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    assert {a.name: a.input.name for a in actions.API_ACTIONS} == BODIES
    for entry in actions.API_ACTIONS:
        operation = schema["paths"][f"/api/v1/staff/requests/{{reference}}/{entry.name}/"]["post"]
        assert operation["operationId"] == f"requests_{entry.name}"
        assert operation["description"] == entry.summary
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{entry.input.name}Request"
        body = components[ref.rsplit("/", 1)[1]]
        assert list(body["properties"]) == [spec.name for spec in entry.input.fields]
        required = [
            s.name
            for s in entry.input.fields
            if (isinstance(s, actions.Text) and not s.optional) or (isinstance(s, actions.Choice) and not s.default)
        ]
        assert sorted(body.get("required", [])) == sorted(required), entry.name
        for spec in entry.input.fields:
            if isinstance(spec, actions.Text):
                assert body["properties"][spec.name]["maxLength"] == spec.max_length
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/RequestDetailOut"
        )
    assert (
        reverse("api:staff-request-verify", kwargs={"reference": "DSR-2026-000001"})
        == "/api/v1/staff/requests/DSR-2026-000001/verify/"
    )


# --- Where the table sits ------------------------------------------------------------------------------


def _dsr_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_the_table_is_a_web_layer_module_that_services_never_import():
    package = ROOT / "dsr"
    # It names services; it writes nothing itself (no event, no status).
    assert not {i.rsplit(".", 1)[-1] for i in _dsr_imports(package / "actions.py")} & {
        "audit_event_record",
        "audit_tombstone_record",
        "request_transition",
        "request_locked",
    }
    assert all(a.service.__module__.startswith("dsr.services.") for a in actions.ACTIONS.values())
    for path in [*(package / "services").rglob("*.py"), package / "selectors.py", package / "models.py"]:
        assert "dsr.actions" not in _dsr_imports(path), path

"""An erasure run: planned per system (nothing changed), awaiting approval, approved (four eyes as
a setting), executed per system, verified, answered; PlanChanged asks approval again; a failing
system leaves the others and the request open and flagged; a redelivered task erases nothing twice."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from dsr.errors import TransitionNotAllowed
from dsr.event_types import EventType
from dsr.fulfilment.models import FulfilmentRun, RunState, SystemStatus
from dsr.fulfilment.services import erasure, runs
from dsr.services.audit import Actor
from tests.factories import officer_create, staff_token_key
from tests.fulfilment import erasure_fakes as fakes
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.erasure_fakes import erasing_systems, run_queued  # noqa: F401

pytestmark = pytest.mark.django_db


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


def _planned(officer, queued, capture, **kwargs):
    req = verified_request(officer=officer, request_type="erasure", **kwargs)
    with capture(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, capture)
    run.refresh_from_db()
    return req, run


def _approve(req, user, capture):
    with capture(execute=True):
        return erasure.erasure_approve(request=req, actor=Actor.staff(user), user_id=user.pk)


def test_the_plan_changes_nothing_and_waits_for_approval(officer, erasing_systems, django_capture_on_commit_callbacks):
    before = {s: {c: dict(rows) for c, rows in t.items()} for s, t in fakes.STORE.items()}
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    assert run.state == RunState.AWAITING_APPROVAL
    assert {s: {c: dict(rows) for c, rows in t.items()} for s, t in fakes.STORE.items()} == before
    assert fakes.ERASE_CALLS == [] and erasing_systems["system"] == []  # no access task ran
    alpha, beta = run.systems.order_by("id")
    assert (alpha.status, beta.status) == (SystemStatus.PLANNED, SystemStatus.PLANNED)
    assert len(alpha.plan_digest) == 64 and alpha.records == 3
    planned = _events(req, EventType.ERASURE_PLANNED)
    assert planned[0].data["systems"] == {"alpha": alpha.plan_digest, "beta": beta.plan_digest}
    assert planned[0].data["problems"] == []


def test_approve_erases_verifies_and_finishes_done_with_a_ledger_entry(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    assert len(erasing_systems["erase"]) == 2
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE and run.approved_at
    assert fakes.STORE["alpha"]["people"] == {2: {"id": 2, "email": "other@example.com"}}  # a stranger stays
    assert fakes.STORE["alpha"]["invoices"][10] == {"id": 10, "email": None, "total": 99}
    assert fakes.STORE["beta"]["rows"] == {}
    alpha = run.systems.get(system="alpha")
    assert alpha.erased["counts"] == {"people": {"deleted": 1, "updated": 0}, "invoices": {"deleted": 0, "updated": 2}}
    assert alpha.verification == {"ok": True, "left": [], "kept": 2}
    executed = _events(req, EventType.ERASURE_EXECUTED)
    assert {e.data["system"]: e.data["digest"] for e in executed}["alpha"] == alpha.plan_digest
    assert len(_events(req, EventType.ERASURE_VERIFIED)) == 2
    assert _events(req, EventType.FULFILMENT_FINISHED)[0].data == {
        "run": run.pk, "state": "done", "records": 2, "failed": [],
    }  # fmt: skip
    entry = run.ledger_entry
    assert entry.systems == ["alpha", "beta"] and entry.reference == req.reference
    assert entry.identity_digests == [erasure.identity_digest("email", "bench1@example.com")]
    assert "bench1" not in str(entry.identity_digests)
    req.refresh_from_db()
    assert req.is_open and not req.flagged_at
    call_command("dsr_verify_audit")


def test_four_eyes_needs_a_second_officer(officer, erasing_systems, django_capture_on_commit_callbacks, settings):
    settings.DSR_ERASURE_FOUR_EYES = True
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL and erasing_systems["erase"] == []
    with pytest.raises(TransitionNotAllowed, match="already approved"):
        _approve(req, officer, django_capture_on_commit_callbacks)
    second = officer_create(username="sam", email="sam@company.example")
    _approve(req, second, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and len(run.approvals) == 2 and len(erasing_systems["erase"]) == 2
    assert [e.data["approvals"] for e in _events(req, EventType.ERASURE_APPROVED)] == [1, 2]


def test_a_plan_with_problems_cannot_be_approved(officer, erasing_systems, django_capture_on_commit_callbacks):
    fakes.PROBLEMS["alpha"] = ["people.email: NOT NULL column cannot be set to null"]
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    assert run.state == RunState.AWAITING_APPROVAL
    with pytest.raises(TransitionNotAllowed, match="NOT NULL"):
        _approve(req, officer, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.approvals == [] and erasing_systems["erase"] == [] and _events(req, EventType.ERASURE_APPROVED) == []


def test_changed_data_rebuilds_the_plan_and_asks_approval_again(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    old = run.systems.get(system="alpha").plan_digest
    _approve(req, officer, django_capture_on_commit_callbacks)
    fakes.STORE["alpha"]["invoices"][12] = {"id": 12, "email": "bench1@example.com", "total": 1}  # a new order
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL and run.approvals == [] and run.approved_at is None
    alpha, beta = run.systems.get(system="alpha"), run.systems.get(system="beta")
    assert alpha.status == SystemStatus.PLANNED and alpha.plan_digest != old
    assert 12 in fakes.STORE["alpha"]["invoices"] and fakes.STORE["alpha"]["invoices"][10]["email"]  # untouched
    # beta's task came after the re-plan: it waits for the new approval (it covers every system left)
    assert beta.status == SystemStatus.PLANNED and "beta" not in fakes.ERASE_CALLS
    assert _events(req, EventType.ERASURE_PLAN_CHANGED)[0].data["digest"] == old
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE and fakes.ERASE_CALLS.count("beta") == 1
    assert fakes.STORE["alpha"]["invoices"][12]["email"] is None


def test_a_failing_system_leaves_the_others_and_the_request_open_and_flagged(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    fakes.BEHAVIOUR["alpha"] = ["fail"]
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    alpha = run.systems.get(system="alpha")
    assert alpha.status == SystemStatus.FAILED and "connection dropped" in alpha.error
    assert fakes.STORE["alpha"]["people"][1]["email"] == "bench1@example.com"  # untouched
    assert fakes.STORE["beta"]["rows"] == {}
    assert _events(req, EventType.FULFILMENT_FINISHED)[0].data["failed"] == ["alpha"]
    assert run.ledger_entry.systems == ["beta"]
    req.refresh_from_db()
    assert req.is_open and req.flagged_at and "alpha" in req.flag_reason


def test_the_verification_pass_fails_a_system_that_left_rows(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    fakes.BEHAVIOUR["beta"] = ["leave"]
    fakes.STORE["beta"]["rows"][8] = {"id": 8, "email": "bench1@example.com"}
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    beta = run.systems.get(system="beta")
    assert beta.status == SystemStatus.FAILED and beta.verification["ok"] is False
    assert beta.verification["left"] == ["beta.rows: row 7 was to be deleted and is still found"]
    assert _events(req, EventType.ERASURE_FAILED)[0].data["stage"] == "verify"
    assert run.systems.get(system="alpha").verification["ok"] is True  # masked rows may remain


def test_a_redelivered_task_erases_nothing_twice(officer, erasing_systems, django_capture_on_commit_callbacks):
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    plan_pk = run.systems.get(system="alpha").pk
    erasure.erasure_system_plan(system_run_id=plan_pk)  # a redelivered planning task: no-op
    assert run.systems.get(system="alpha").status == SystemStatus.PLANNED
    _approve(req, officer, django_capture_on_commit_callbacks)
    pk = erasing_systems["erase"][0]
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erasure_system_execute(system_run_id=pk)
        erasure.erasure_system_execute(system_run_id=pk)
    assert fakes.ERASE_CALLS == ["alpha"]
    assert len(_events(req, EventType.ERASURE_EXECUTED)) == 1
    with pytest.raises(TransitionNotAllowed):  # a second approval of a running erasure
        _approve(req, officer, django_capture_on_commit_callbacks)


def test_the_answer_in_swedish_says_what_was_deleted_and_what_was_kept_and_why(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks, language="sv", regime="gdpr")
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    message = erasure.erasure_answer_message(FulfilmentRun.objects.get(pk=run.pk), "sv")
    assert "Vi har" in message and "alpha" in message
    assert "Invoices are kept 7 years for tax law" in message  # the map's reason, as the owner wrote it
    assert "beta" in message and "bench1" not in message
    # Art 17(2), Art 19: the recipient told to delete it, and when it confirmed.
    assert "Parcel carriers: bekräftade den" in message


def test_the_ccpa_answer_names_the_recipients_told_and_when_they_confirmed(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    message = erasure.erasure_answer_message(FulfilmentRun.objects.get(pk=run.pk), "en")
    assert "alpha: we deleted 1 record and removed your details from 2 records we must keep." in message
    assert "beta: we deleted 1 record." in message
    assert "We told those who received your information from us to delete it:" in message
    assert "- Parcel carriers: confirmed on " in message
    assert "recipient:" not in message


def test_the_api_plans_shows_the_plan_and_approves_with_409s(officer, staff_api, erasing_systems,
                                                           django_capture_on_commit_callbacks):  # fmt: skip
    req = verified_request(officer=officer, request_type="erasure")
    base = f"/api/v1/staff/requests/{req.reference}/fulfilment/"
    assert staff_api.post(base + "approve/").status_code == 409  # nothing planned yet
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.post(base + "start/").status_code == 202
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    body = staff_api.get(base).json()
    assert body["state"] == "awaiting_approval"
    alpha = body["plan"]["systems"][0]
    assert alpha["system"] == "alpha" and alpha["collections"][0] == {
        "collection": "people", "action": "delete", "keys": ["1"], "updates": [], "kept": [], "note": "",
        "counts": {"deleted": 1, "updated": 0},
    }  # fmt: skip
    assert alpha["collections"][1]["kept"] == [{"field": "total", "reason": "Invoices are kept 7 years for tax law"}]
    assert body["plan"]["systems"][0]["automated"] is True and "find" in body["plan"]["systems"][0]["verified_by"]
    reviewer = officer_create(username="rita", email="rita@company.example", role="reviewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(reviewer)}")
    assert client.post(base + "approve/").status_code == 403
    assert FulfilmentRun.objects.get(request=req).approvals == []
    assert APIClient().post(base + "approve/").status_code in (401, 403)
    with django_capture_on_commit_callbacks(execute=True):
        approved = staff_api.post(base + "approve/")
    assert approved.status_code == 202 and approved.json()["plan"]["approvals"][0]["by"]
    again = staff_api.post(base + "approve/")
    assert again.status_code == 409 and again["Content-Type"].startswith("application/problem+json")
    assert staff_api.post("/api/v1/staff/requests/NOPE-1/fulfilment/approve/").status_code == 404


def test_access_runs_carry_no_plan(officer, staff_api, erasing_systems):
    req = verified_request(officer=officer)
    assert staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()["plan"] is None


# --- The request page's erasure panel -------------------------------------------------------------

PASSWORD = "correct horse battery"


def test_the_panel_shows_the_plan_escaped_and_the_officer_approves_and_answers(
    officer, client, erasing_systems, django_capture_on_commit_callbacks
):
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    alpha = run.systems.get(system="alpha")
    alpha.plan["rows"][1]["note"] = "<script>alert(1)</script>"
    alpha.save(update_fields=["plan"])
    client.login(username=officer.username, password=PASSWORD)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Erasure across the systems" in page and "Approve the erasure" in page
    assert "total: Invoices are kept 7 years for tax law" in page and "email → null" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "not yet automated" not in page
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/dashboard/fulfilment/requests/{req.reference}/erasure/approve/").status_code == 302
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Erased and verified" in page and "1 deleted, 0 masked" in page
    assert "Approve the erasure</button>" not in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/dashboard/fulfilment/requests/{req.reference}/erasure/answer/")
    req.refresh_from_db()
    assert req.status == "completed" and req.outcome == "complied"  # every system erased and verified
    assert "alpha: we deleted 1 record" in req.response_message


def test_no_approve_button_while_the_plan_has_problems(officer, client, erasing_systems,
                                                       django_capture_on_commit_callbacks):  # fmt: skip
    fakes.PROBLEMS["beta"] = ["rows.email: unique column cannot take a fixed value"]
    req, _ = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    client.login(username=officer.username, password=PASSWORD)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "The plan cannot be approved" in page and "unique column" in page
    assert "Approve the erasure</button>" not in page and "Plan again" in page


def test_a_reviewer_sees_the_plan_but_cannot_approve(officer, client, erasing_systems,
                                                     django_capture_on_commit_callbacks):  # fmt: skip
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    reviewer = officer_create(username="rita", email="rita@company.example", role="reviewer")
    client.login(username=reviewer.username, password=PASSWORD)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Erasure across the systems" in page and "Approve the erasure</button>" not in page
    assert client.post(f"/dashboard/fulfilment/requests/{req.reference}/erasure/approve/").status_code == 403
    run.refresh_from_db()
    assert run.approvals == [] and erasing_systems["erase"] == []


def test_the_answer_waits_for_the_erasure(officer, erasing_systems, django_capture_on_commit_callbacks):
    req, _ = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    with pytest.raises(TransitionNotAllowed, match="not done yet"):
        erasure.erasure_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    assert req.is_open and not _events(req, EventType.COMPLETED)


def test_planning_again_replaces_a_plan_awaiting_approval(officer, erasing_systems, django_capture_on_commit_callbacks):
    req, first = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        second = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    first.refresh_from_db()
    assert first.state == RunState.CANCELLED and second.pk != first.pk
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(TransitionNotAllowed, match="already running"):
        runs.fulfilment_start(request=req, actor=Actor.staff(officer))


def test_an_erasure_system_is_not_retried_like_a_search_the_officer_plans_again(
    officer, staff_api, erasing_systems, django_capture_on_commit_callbacks
):
    fakes.BEHAVIOUR["alpha"] = ["fail"]
    req, run = _planned(officer, erasing_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(erasing_systems, django_capture_on_commit_callbacks)
    response = staff_api.post(f"/api/v1/staff/requests/{req.reference}/fulfilment/systems/alpha/retry/")
    assert response.status_code == 409 and "plan" in response.json()["detail"]
    assert run.systems.get(system="alpha").status == SystemStatus.FAILED  # nothing queued that would do nothing
    assert erasing_systems["system"] == []

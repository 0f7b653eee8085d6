"""Erasure of http and manual systems (issue 11): an http system is asked `find` at planning and
told to erase after approval (a signed instruct call over the loopback processor, real
signatures), confirming inline or by its signed callback, then verified by `find` again; a manual
system's owner gets the exact list behind a private link and confirms or says why not. An erasure
with sql + http + manual systems end to end: preview → approve → all confirmed → done → answer,
which lists a system as erased only once it confirmed."""

import json
import re
from datetime import timedelta

import pytest

from dsr.event_types import EventType
from dsr.fulfilment.models import ManualTask, RunState, SystemStatus
from dsr.fulfilment.services import erasure, runs
from dsr.models import OutboundEmail
from dsr.services.audit import Actor
from tests.fulfilment import erasure_fakes as fakes
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.erasure_fakes import run_queued
from tests.fulfilment.support_http import SECRET, SECRET_ENV, Reply, callback_post, processor  # noqa: F401
from tests.fulfilment.support_remote import channel, run_all  # noqa: F401

pytestmark = pytest.mark.django_db

EMAIL = "bench1@example.com"
FOUND = {
    "records": {
        "charges": [
            {"id": "ch_1", "email": EMAIL, "amount_cents": 1299},
            {"id": "ch_2", "email": EMAIL, "amount_cents": 500},
        ],
        "payment_methods": [{"id": "pm_1", "email": EMAIL, "card_brand": "Visa"}],
    }
}
KEPT_ONLY = {"records": {"charges": [{"id": "ch_1", "email": "[erased]"}, {"id": "ch_2", "email": "[erased]"}]}}


def remote_map(url: str) -> str:
    """alpha (sql, a fake erasing connector), payments (http at the loopback processor), crm (manual)."""
    return (
        fakes.MAP_ERASING_ONLY.split("  - name: beta")[0]
        + f"""
  - name: payments
    owner: finance@example.com
    kind: http
    connection: {{url: "{url}", secret_env: {SECRET_ENV}, timeout_seconds: 2, retries: 2}}
    collections:
      - name: payment_methods
        primary_key: id
        identities: {{email: email}}
        fields:
          id: none
          email: {{category: identifiers, erasure: delete}}
          card_brand: {{category: customer_records, erasure: delete}}
      - name: charges
        primary_key: id
        identities: {{email: email}}
        fields:
          id: none
          email: {{category: identifiers, erasure: fixed}}
          amount_cents: {{category: commercial_information, erasure: keep, keep_reason: "Payments are kept 7 years for tax law"}}
  - name: crm
    owner: sales@example.com
    kind: manual
    connection: {{instructions: The Leads sheet.}}
    collections:
      - name: leads
        primary_key: email
        identities: {{email: email}}
        fields: {{email: {{category: identifiers, erasure: delete}}, note: {{category: inferences, erasure: delete}}}}
"""
    )


@pytest.fixture
def remote(settings, tmp_path, monkeypatch, processor):  # noqa: F811
    queued = fakes.erasing_systems_install(settings, tmp_path, monkeypatch, remote_map(processor.url))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return queued


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


def _planned(officer, remote, capture, **kwargs):
    req = verified_request(officer=officer, request_type="erasure", **kwargs)
    with capture(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(remote, capture)
    run.refresh_from_db()
    return req, run


def _approve(req, officer, capture):
    with capture(execute=True):
        erasure.erasure_approve(request=req, actor=Actor.staff(officer), user_id=officer.pk)


def _task_link(system: str) -> str:
    email = OutboundEmail.objects.filter(template="owner_instruction").latest("pk")
    assert system in email.subject
    return re.search(r"http://testserver(/fulfilment/task/[^/\s]+/)", email.body_text).group(1)


def _instruct_calls(processor):  # noqa: F811
    return [c for c in processor.calls if c.payload and c.payload.get("mode") == "instruct"]


def test_the_plan_asks_the_http_system_find_and_plans_the_manual_one_by_identities(
    officer,
    remote,
    processor,
    staff_api,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    processor.plan = [Reply(200, FOUND)]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks)
    assert run.state == RunState.AWAITING_APPROVAL
    [find] = processor.calls
    assert find.signature_ok and find.payload["mode"] == "find" and find.payload["identities"] == {"email": EMAIL}
    alpha, payments, crm = run.systems.order_by("id")
    assert (alpha.status, payments.status, crm.status) == (SystemStatus.PLANNED,) * 3
    assert len(payments.plan_digest) == 64 and payments.records == 3
    plan = staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()["plan"]
    by_system = {s["system"]: s for s in plan["systems"]}
    pay = {c["collection"]: c for c in by_system["payments"]["collections"]}
    assert pay["charges"]["action"] == "mask" and pay["charges"]["keys"] == ["ch_1", "ch_2"]
    assert pay["charges"]["kept"] == [{"field": "amount_cents", "reason": "Payments are kept 7 years for tax law"}]
    assert pay["payment_methods"]["action"] == "delete" and pay["payment_methods"]["keys"] == ["pm_1"]
    assert "find" in by_system["payments"]["verified_by"] and by_system["payments"]["told"] is True
    [leads] = by_system["crm"]["collections"]
    assert leads["action"] == "delete" and leads["keys"] == [] and "found by email in email" in leads["note"]
    assert "owner's confirmation" in by_system["crm"]["verified_by"]
    assert plan["problems"] == [] and not _instruct_calls(processor)  # nothing is told before approval
    assert not OutboundEmail.objects.filter(template="owner_instruction").exists()


def test_sql_http_and_manual_end_to_end_preview_approve_confirmed_done_answer(
    officer,
    client,
    remote,
    channel,
    processor,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    capture = django_capture_on_commit_callbacks
    processor.plan = [Reply(200, FOUND), Reply(202, {}), Reply(200, KEPT_ONLY)]
    req, run = _planned(officer, remote, capture, language="nl")
    _approve(req, officer, capture)
    run_all(remote, channel, capture)
    alpha, payments, crm = run.systems.order_by("id")
    assert alpha.status == SystemStatus.DONE and alpha.verification["ok"]
    # payments was told to erase, signed like the export call, and said it will (202).
    [told] = _instruct_calls(processor)
    assert told.signature_ok and told.headers["Idempotency-Key"] == told.payload["task_key"]
    body = told.payload
    assert (body["action"], body["reference"], body["identities"]) == ("erase", req.reference, {"email": EMAIL})
    assert body["callback_url"] == f"http://testserver/fulfilment/callback/{payments.pk}/" and body["callback_token"]
    items = {i["collection"]: i for i in body["items"]}
    assert items["payment_methods"]["delete"] is True and items["payment_methods"]["keys"] == ["pm_1"]
    assert items["charges"] == {"collection": "charges", "keys": ["ch_1", "ch_2"], "delete": False,
                                "fields": ["email"], "strategies": {"email": "fixed"}, "kept": ["amount_cents"]}  # fmt: skip
    assert payments.status == SystemStatus.WAITING and crm.status == SystemStatus.WAITING
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    # Before the confirmations the answer cannot be sent, and it would list neither as erased.
    message = erasure.erasure_answer_message(run, "en")
    assert "payments: not yet deleted" in message and "crm: not yet deleted" in message
    # payments confirms on its callback, signed; then it is searched again: only what is kept.
    with capture(execute=True):
        answer = callback_post(client, payments.pk, {"done": True, "counts": {"payment_methods": 1, "charges": 2}},
                               token=body["callback_token"])  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == SystemStatus.DONE
    run_all(remote, channel, capture)
    payments.refresh_from_db()
    assert payments.verification == {"ok": True, "left": [], "kept": 2, "by": "find"}
    assert processor.calls[-1].payload["mode"] == "find"
    run.refresh_from_db()
    assert run.state == RunState.RUNNING  # crm's owner has not confirmed yet
    # crm's owner opens the private link: the exact list; confirms with a count.
    link = _task_link("crm")
    page = client.get(link).content.decode()
    assert "Please erase the person&#x27;s records in crm" in page and EMAIL in page
    assert "delete the rows" in page and "leads" in page
    with capture(execute=True):
        answer = client.post(link, {"answer": "done", "confirm": "yes", "count_leads": "1"})
    assert answer.status_code == 200 and "recorded that it is done" in answer.content.decode()
    run_all(remote, channel, capture)
    crm.refresh_from_db()
    run.refresh_from_db()
    assert crm.status == SystemStatus.DONE and crm.verification["by"] == "owner"
    assert crm.erased["counts"] == {"leads": {"deleted": 1, "updated": 0}}
    assert run.state == RunState.DONE
    verified = {e.data["system"] for e in _events(req, EventType.ERASURE_VERIFIED)}
    assert verified == {"alpha", "payments", "crm"}
    # The answer, in the requester's language, lists every system as erased, and the kept reason.
    with capture(execute=True):
        done = erasure.erasure_answer_send(request=req, actor=Actor.staff(officer))
    assert done.status == "completed" and done.outcome == "complied"
    assert "payments" in done.response_message and "crm" in done.response_message
    assert "Payments are kept 7 years for tax law" in done.response_message
    english = erasure.erasure_answer_message(run, "en")
    assert "payments: we deleted 1 record and removed your details from 2 records we must keep." in english
    assert "crm: we deleted 1 record." in english
    assert EMAIL not in english


def test_an_http_system_that_confirms_inline_is_done_then_verified(
    officer,
    remote,
    channel,
    processor,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    processor.plan = [Reply(200, FOUND), Reply(200, {"done": True, "counts": {"charges": 2}}), Reply(200, KEPT_ONLY)]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_all(remote, channel, django_capture_on_commit_callbacks)
    payments = run.systems.get(system="payments")
    assert payments.status == SystemStatus.DONE and payments.verification["ok"] is True
    assert payments.erased["counts"] == {"charges": {"deleted": 0, "updated": 2}}
    confirmed = _events(req, EventType.INSTRUCTION_CONFIRMED)
    assert confirmed and confirmed[0].data["system"] == "payments"


def test_a_confirmation_that_leaves_rows_behind_fails_the_system(
    officer,
    remote,
    channel,
    processor,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    processor.plan = [Reply(200, FOUND), Reply(200, {"done": True}), Reply(200, FOUND)]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_all(remote, channel, django_capture_on_commit_callbacks)
    payments = run.systems.get(system="payments")
    assert payments.status == SystemStatus.FAILED and "pm_1 was to be deleted and is still found" in payments.error
    assert payments.verification["ok"] is False


def test_the_owner_could_not_erase_fails_the_system_and_flags_the_request(
    officer,
    client,
    remote,
    channel,
    processor,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    processor.plan = [Reply(200, FOUND), Reply(200, {"done": True}), Reply(200, KEPT_ONLY)]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_all(remote, channel, django_capture_on_commit_callbacks)
    link = _task_link("crm")
    answer = client.post(link, {"answer": "could_not", "reason": ""})
    assert answer.status_code == 400 and "Say why" in answer.content.decode()
    assert run.systems.get(system="crm").status == SystemStatus.WAITING  # nothing recorded
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(link, {"answer": "could_not", "reason": "The sheet is <b>locked</b> by legal hold"})
    assert answer.status_code == 200
    crm = run.systems.get(system="crm")
    run.refresh_from_db()
    req.refresh_from_db()
    assert crm.status == SystemStatus.FAILED and "locked" in crm.error
    assert run.state == RunState.FAILED and req.is_open
    # A second answer through the same link is refused; the page says it was answered, escaped.
    page = client.post(link, {"answer": "done", "confirm": "yes"}).content.decode()
    assert "it could not be done" in page and "<b>locked</b>" not in page


def test_the_owners_counts_must_be_numbers_and_the_link_must_be_right(
    officer,
    client,
    remote,
    channel,
    processor,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    processor.plan = [Reply(200, FOUND), Reply(202, {})]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_all(remote, channel, django_capture_on_commit_callbacks)
    link = _task_link("crm")
    answer = client.post(link, {"answer": "done", "confirm": "yes", "count_leads": "two"})
    assert answer.status_code == 400 and "must be a whole number" in answer.content.decode()
    answer = client.post(link, {"answer": "done", "count_leads": "1"})
    assert answer.status_code == 400 and "Tick the box" in answer.content.decode()
    assert client.get("/fulfilment/task/not-a-real-token/").status_code == 404
    task = ManualTask.objects.get(system_run__system="crm")
    assert task.answered_at is None and run.systems.get(system="crm").status == SystemStatus.WAITING
    assert json.dumps(task.system_run.instruction)  # the list the owner sees is the one stored


def test_confirmed_without_counts_the_answer_says_who_confirmed_and_the_replay_leaves_them_alone(
    officer, client, remote, channel, processor, django_capture_on_commit_callbacks  # noqa: F811
):
    processor.plan = [Reply(200, FOUND), Reply(200, {"done": True}), Reply(200, KEPT_ONLY)]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks, language="sv")
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_all(remote, channel, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_task_link("crm"), {"answer": "done", "confirm": "yes"})
    run_all(remote, channel, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE
    english = erasure.erasure_answer_message(run, "en")
    assert "payments: the system confirmed that your information was deleted." in english
    assert "crm: its owner confirmed that your information was deleted." in english
    swedish = erasure.erasure_answer_message(run, "sv")
    assert "crm: systemets ägare har bekräftat att dina uppgifter har raderats." in swedish
    assert "payments: systemet har bekräftat" in swedish
    dutch = erasure.erasure_answer_message(run, "nl")
    assert "crm: de eigenaar van het systeem heeft bevestigd" in dutch
    # The ledger lists every system erased; a replay after a restore plans only the product's own.
    assert run.ledger_entry.systems == ["alpha", "payments", "crm"]
    results = erasure.ledger_replay(since=run.started_at - timedelta(days=1), dry_run=True)
    assert [r.system for r in results] == ["alpha"]


def test_the_request_page_and_the_api_say_who_was_told_and_how_it_is_proved(
    officer, client, staff_api, remote, channel, processor, django_capture_on_commit_callbacks  # noqa: F811
):
    processor.plan = [Reply(200, FOUND), Reply(202, {})]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_all(remote, channel, django_capture_on_commit_callbacks)
    client.login(username=officer.username, password="correct horse battery")
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert page.count("Told to erase; waiting for its confirmation") == 2  # payments and crm
    assert "its owner erases the records and confirms it on their task link" in page
    assert "found by the owner" in page
    body = staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()
    assert {s["system"]: s["status"] for s in body["systems"]} == {
        "alpha": "done", "payments": "waiting", "crm": "waiting"
    }  # fmt: skip
    assert body["state"] == "running" and body["plan"]["cancellable"] is False


def test_an_http_system_that_holds_nothing_is_not_told_and_is_searched_again(
    officer, client, remote, channel, processor, django_capture_on_commit_callbacks  # noqa: F811
):
    processor.plan = [Reply(200, {"nothing_held": True})]
    req, run = _planned(officer, remote, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_all(remote, channel, django_capture_on_commit_callbacks)
    payments = run.systems.get(system="payments")
    assert payments.status == SystemStatus.DONE and payments.verification == {"ok": True, "left": [], "kept": 0,
                                                                             "by": "find"}  # fmt: skip
    assert _instruct_calls(processor) == [] and [c.payload["mode"] for c in processor.calls] == ["find", "find"]
    assert not payments.instruction

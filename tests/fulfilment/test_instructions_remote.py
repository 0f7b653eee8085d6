"""http and manual systems told what to do, for every action: the http handler's signed call
(inline 200 confirmed, 202 pending, 5xx and timeouts retried, a 4xx failing with the system's own
message), the instruction's callback (the signature, its nonce, the token, a second confirmation,
the counts checked against the map), and the reminders and escalation of the sweep — the manual
owner reminded and the team told once; a silent http system told once more, then the team told."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from dsr.event_types import EventType
from dsr.fulfilment.connectors import ConnectorError, Subject, connector_for
from dsr.fulfilment.connectors.base import INSTRUCTION_ACTIONS, Instruction
from dsr.fulfilment.datamap import datamap_load
from dsr.fulfilment.models import ManualTask, RunState, SystemStatus
from dsr.fulfilment.services import sweep
from dsr.models import OutboundEmail
from tests.fulfilment.support_http import Reply, callback_post, processor  # noqa: F401
from tests.fulfilment.support_remote import channel, run_all, run_channel  # noqa: F401
from tests.fulfilment.test_erasure_remote import FOUND, KEPT_ONLY, _approve, _instruct_calls, _planned, remote  # noqa: F401

pytestmark = pytest.mark.django_db

ANN = Subject(reference="DSR-TEST", identities={"email": "ann@example.com"}, request_type="erasure", task_key="k:1:x")


def _payments():
    return connector_for(datamap_load().system("payments"))


def _problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json" and response.json()["type"].endswith(code)


# --- The handler, for every action ---------------------------------------------------------------------


@pytest.mark.parametrize("action", INSTRUCTION_ACTIONS)
def test_every_action_is_one_signed_instruct_call(action, remote, processor):  # noqa: F811
    processor.plan = [Reply(200, {"done": True, "counts": {"charges": 3}})]
    items = ({"collection": "charges", "keys": ["ch_1"], "set": {"restricted": True}},)
    answer = _payments().instruct(ANN, Instruction(action=action, items=items, note="only these"))
    assert answer.confirmed is True and answer.counts == {"charges": 3}
    [call] = processor.calls
    assert call.signature_ok and call.headers["Idempotency-Key"] == "k:1:x"
    assert (call.payload["mode"], call.payload["action"], call.payload["note"]) == ("instruct", action, "only these")
    assert call.payload["items"] == [dict(items[0])] and call.payload["identities"] == {"email": "ann@example.com"}


@pytest.mark.parametrize("reply, pending, retry, message", [
    (Reply(202, {}), True, None, None),
    (Reply(500, {"detail": "db down"}), False, True, "answered HTTP 500: db down"),
    (Reply(429, {}), False, True, "HTTP 429"),
    (Reply(404, {"detail": "no such customer here"}), False, False, "answered HTTP 404: no such customer here"),
    (Reply(200, {"error": "legal hold on this account"}), False, False, "could not erase: legal hold"),
    (Reply(200, {"done": True, "counts": {"invoices": 1}}), False, False, "'invoices' is not a collection"),
    (Reply(200, {"done": True, "counts": {"charges": -1}}), False, False, "whole number"),
    (Reply(200, {"records": {}}), False, False, "must be {\"done\": true"),
])  # fmt: skip
def test_answers_that_are_not_a_confirmation(reply, pending, retry, message, remote, processor):  # noqa: F811
    processor.plan = [reply]
    if pending:
        answer = _payments().instruct(ANN, Instruction(action="erase"))
        assert answer.confirmed is False and "waiting for its confirmation" in answer.pending
        return
    with pytest.raises(ConnectorError, match=message) as raised:
        _payments().instruct(ANN, Instruction(action="erase"))
    assert raised.value.retry is retry


def test_a_timeout_may_pass(remote, processor, settings):  # noqa: F811
    processor.plan = [Reply(200, {"done": True}, delay=3)]
    with pytest.raises(ConnectorError, match="did not answer within 2 s") as raised:
        _payments().instruct(ANN, Instruction(action="restrict"))
    assert raised.value.retry is True


# --- Through the channel: retries, and the callback ------------------------------------------------------


def _told(officer, remote, channel, processor, capture, *replies):  # noqa: F811
    processor.plan = [Reply(200, FOUND), *replies]
    req, run = _planned(officer, remote, capture)
    _approve(req, officer, capture)
    run_all(remote, channel, capture)
    return req, run, run.systems.get(system="payments")


def test_a_5xx_is_retried_and_a_4xx_fails_with_the_systems_message(
    officer,
    remote,
    channel,
    processor,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    req, run, payments = _told(officer, remote, channel, processor, django_capture_on_commit_callbacks,
                               Reply(503, {"detail": "busy"}), Reply(202, {}))  # fmt: skip
    assert payments.status == SystemStatus.WAITING and payments.attempts == 2
    assert len(_instruct_calls(processor)) == 2
    assert len({c.payload["task_key"] for c in _instruct_calls(processor)}) == 1  # one idempotency key
    failed = _events(req, EventType.INSTRUCTION_FAILED)
    assert failed[0].data["final"] is False and "busy" in failed[0].data["reason"]


def test_a_4xx_is_not_retried(officer, remote, channel, processor, django_capture_on_commit_callbacks):  # noqa: F811
    req, run, payments = _told(officer, remote, channel, processor, django_capture_on_commit_callbacks,
                               Reply(422, {"detail": "customer is under a legal hold"}))  # fmt: skip
    assert payments.status == SystemStatus.FAILED and "legal hold" in payments.error
    assert len(_instruct_calls(processor)) == 1
    run.refresh_from_db()
    assert run.state == RunState.RUNNING  # crm's owner has still to answer; the run fails after


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


@pytest.fixture
def waiting(officer, remote, channel, processor, django_capture_on_commit_callbacks):  # noqa: F811
    req, run, payments = _told(officer, remote, channel, processor, django_capture_on_commit_callbacks, Reply(202, {}))
    assert payments.status == SystemStatus.WAITING
    token = _instruct_calls(processor)[0].payload["callback_token"]
    processor.plan = [Reply(200, KEPT_ONLY)]
    return {"req": req, "run": run, "payments": payments, "token": token}


DONE = {"done": True, "counts": {"charges": 2, "payment_methods": 1}}


def _still_waiting(waiting):
    waiting["payments"].refresh_from_db()
    assert waiting["payments"].status == SystemStatus.WAITING
    assert _events(waiting["req"], EventType.INSTRUCTION_CONFIRMED) == []


def test_the_callback_refuses_a_wrong_token_a_bad_signature_and_bad_counts(client, waiting):
    pk = waiting["payments"].pk
    _problem(callback_post(client, pk, DONE, token="not-the-token"), 401, "token_invalid")
    _problem(callback_post(client, pk, DONE, token=waiting["token"], secret="another-secret"), 403, "signature_invalid")
    _problem(callback_post(client, pk, {"done": True, "counts": {"refunds": 1}}, token=waiting["token"]), 400,
             "invalid_input")  # fmt: skip
    _problem(callback_post(client, pk, {"error": " "}, token=waiting["token"]), 400, "invalid_input")
    _problem(callback_post(client, pk, {"records": {}}, token=waiting["token"]), 400, "invalid_input")
    _still_waiting(waiting)


def test_a_replayed_callback_is_409_and_a_second_confirmation_changes_nothing(
    client, waiting, remote, channel, django_capture_on_commit_callbacks
):
    pk = waiting["payments"].pk
    with django_capture_on_commit_callbacks(execute=True):
        first = callback_post(client, pk, DONE, token=waiting["token"], nonce="the-same-nonce-123456")
    assert first.status_code == 200 and first.json()["counts"] == {"charges": 2, "payment_methods": 1}
    _problem(callback_post(client, pk, DONE, token=waiting["token"], nonce="the-same-nonce-123456"), 409,
             "signature_replayed")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        _problem(callback_post(client, pk, {"done": True, "counts": {"charges": 9}}, token=waiting["token"]), 409,
                 "already_answered")  # fmt: skip
    waiting["payments"].refresh_from_db()
    assert waiting["payments"].instructed["counts"] == {"charges": 2, "payment_methods": 1}
    assert len(_events(waiting["req"], EventType.INSTRUCTION_CONFIRMED)) == 1
    assert len(_events(waiting["req"], EventType.ERASURE_EXECUTED)) == 2  # alpha's and payments', once


def test_an_error_on_the_callback_fails_the_system(client, waiting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = callback_post(client, waiting["payments"].pk, {"error": "account closed by fraud team"},
                               token=waiting["token"])  # fmt: skip
    assert answer.status_code == 200 and answer.json()["status"] == SystemStatus.FAILED
    waiting["payments"].refresh_from_db()
    assert (
        waiting["payments"].status == SystemStatus.FAILED
        and "account closed by fraud team" in waiting["payments"].error
    )


# --- Reminders and escalation -----------------------------------------------------------------------------


def test_the_manual_owner_is_reminded_and_the_team_told_once_near_the_due_date(
    waiting, settings, django_capture_on_commit_callbacks
):
    settings.DSR_ESCALATION_EMAILS = ["team@company.example"]
    task = ManualTask.objects.get(system_run__system="crm")
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.fulfilment_sweep()["owners_reminded"] == 0  # not yet due
    with time_machine.travel(timezone.now() + timedelta(days=4), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            sweep.fulfilment_sweep()
    [reminder] = OutboundEmail.objects.filter(template="owner_instruction_reminder")
    assert reminder.to == "sales@example.com" and "erase the person's records" in reminder.body_text
    assert "/fulfilment/task/" in reminder.body_text
    due = waiting["run"].due_date
    near = timezone.make_aware(timezone.datetime.combine(due - timedelta(days=3), timezone.datetime.min.time()))
    for _ in range(2):
        with time_machine.travel(near + timedelta(hours=12), tick=False):
            with django_capture_on_commit_callbacks(execute=True):
                sweep.fulfilment_sweep()
    told = OutboundEmail.objects.filter(template="staff_instruction_unconfirmed")
    crm_told = [e for e in told if "crm has not confirmed" in e.subject]
    assert len(crm_told) == 1 and crm_told[0].to == "team@company.example"
    task.refresh_from_db()
    assert task.escalated_at is not None


def test_a_silent_http_system_is_told_once_more_then_the_team_is_told(
    waiting,
    channel,
    processor,
    settings,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    settings.DSR_ESCALATION_EMAILS = ["team@company.example"]
    settings.DSR_INSTRUCTION_WAIT_HOURS = 48
    processor.plan = [Reply(202, {})]
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.http_instructions_nudge() == {"resent": 0, "escalated": 0}
    later = timezone.now() + timedelta(hours=49)
    with time_machine.travel(later, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep.http_instructions_nudge() == {"resent": 1, "escalated": 0}
        run_channel(channel, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep.http_instructions_nudge() == {"resent": 0, "escalated": 0}  # once
    assert len(_instruct_calls(processor)) == 2
    waiting["payments"].refresh_from_db()
    assert waiting["payments"].status == SystemStatus.WAITING and waiting["payments"].resent_at
    with time_machine.travel(later + timedelta(hours=49), tick=False):
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                sweep.http_instructions_nudge()
    [told] = [
        e for e in OutboundEmail.objects.filter(template="staff_instruction_unconfirmed") if "payments" in e.subject
    ]
    assert "told again on" in told.body_text and told.to == "team@company.example"
    assert len(_instruct_calls(processor)) == 2  # told once more, never a third time


def test_nothing_is_nudged_once_confirmed(client, waiting, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        callback_post(client, waiting["payments"].pk, DONE, token=waiting["token"])
    with time_machine.travel(timezone.now() + timedelta(days=30), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep.http_instructions_nudge() == {"resent": 0, "escalated": 0}
    waiting["payments"].refresh_from_db()
    assert waiting["payments"].resent_at is None and waiting["payments"].escalated_at is None


@pytest.mark.parametrize("action, item, what", [
    ("erase", {"collection": "leads", "keys": [], "delete": True, "fields": []}, "delete the rows"),
    ("erase", {"collection": "leads", "keys": ["a@x"], "delete": False, "fields": ["note"]}, "erase the fields note"),
    ("restrict", {"collection": "leads", "keys": ["a@x"], "set": {"restricted": True}}, "set restricted = True"),
    ("opt_out_sale", {"collection": "leads", "keys": [], "set": {}}, "flag the records"),
    ("correct", {"collection": "leads", "key": "a@x", "field": "note", "value": "Ann"}, "set note to Ann"),
])  # fmt: skip
def test_the_owners_list_says_what_to_do_for_every_action(action, item, what, remote):
    from dsr.fulfilment.services.manual_tasks import instruction_lines

    crm = datamap_load().system("crm")
    [line] = instruction_lines({"action": action, "items": [item]}, crm)
    assert line["what"] == what and line["collection"] == "leads"
    if item.get("keys") or item.get("key"):
        assert line["keys"] and line["identities"] == {}
    else:
        assert line["keys"] == [] and line["identities"] == {"email": "email"}  # found by identities

"""The run-mode demo processor, end to end over real HTTP (the product's live server): the shipped
map's `payments` system is asked, the demo checks the signature and answers 202, the system shows
"requested"; a moment later the demo's task posts the signed callback and the system is done with
the demo customer's records (a CCPA look-back leaves out the charge older than a year). A person
the demo does not know is answered inline: nothing held. Outside run mode the URL is a 404."""

import json

import pytest
import yaml

from dsr.event_types import EventType
from dsr.fulfilment import demo_processor
from dsr.fulfilment.models import RunState, SystemStatus
from dsr.fulfilment.services import runs
from dsr.models import DemoCustomer
from dsr.services.audit import Actor
from tests.factories import officer_create
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.support_http import queued, run_queued, signed_headers  # noqa: F401  (fixtures)
from tests.support import ROOT

DEMO_SECRET = "demo processor secret for tests"


@pytest.fixture
def demo(settings, tmp_path, monkeypatch, live_server, queued):
    shipped = yaml.safe_load((ROOT / "config" / "datamap.yaml").read_text())
    shipped["systems"] = [s for s in shipped["systems"] if s["name"] == "payments"]
    path = tmp_path / "datamap.yaml"
    path.write_text(yaml.safe_dump(shipped))
    settings.DSR_DATAMAP = str(path)
    settings.DSR_DEMO_SYSTEMS = True
    settings.SITE_URL = live_server.url
    monkeypatch.setenv("DSR_DEMO_PROCESSOR_URL", f"{live_server.url}/demo/processor/")
    monkeypatch.setenv("DSR_DEMO_PROCESSOR_SECRET", DEMO_SECRET)
    answers = []
    monkeypatch.setattr(
        demo_processor.demo_processor_answer, "apply_async", lambda args, countdown=0: answers.append((args, countdown))
    )
    DemoCustomer.objects.create(email="ada.lovelace@demo.example", full_name="Ada Lovelace", phone="+1 415 555 0101",
                                postal_code="94103", customer_number="C-1001")  # fmt: skip
    return answers


@pytest.mark.django_db(transaction=True)
def test_a_demo_customer_is_requested_then_answered_by_the_signed_callback(
    demo, queued, django_capture_on_commit_callbacks
):
    officer = officer_create(username="olivia", email="olivia@company.example")
    req = verified_request(officer=officer, email="ada.lovelace@demo.example", regime="ccpa")
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, django_capture_on_commit_callbacks)
    system_run = run.systems.get()
    assert system_run.status == SystemStatus.RUNNING and system_run.requested_at, system_run.error
    [requested] = [e for e in req.events.all() if e.event_type == EventType.FULFILMENT_SYSTEM_REQUESTED]
    assert requested.data["note"].startswith("requested from payments on ")
    [(args, countdown)] = demo
    assert countdown == demo_processor.ANSWER_AFTER_SECONDS > 0

    # "A moment later": the demo's task runs and posts the records to the product's callback.
    assert demo_processor.demo_processor_answer.run(*args) == 200
    system_run.refresh_from_db()
    run.refresh_from_db()
    assert system_run.status == SystemStatus.DONE
    assert system_run.counts == {"payment_methods": 1, "charges": 2}  # the 420-day-old charge is outside CCPA's year
    assert system_run.withheld[0]["field"] == "card_number"  # §7024(d): held, not shown
    assert run.state == RunState.DONE
    # The callback cannot be posted twice.
    assert demo_processor.demo_processor_answer.run(*args) == 409


@pytest.mark.django_db(transaction=True)
def test_a_person_the_demo_does_not_know_is_answered_inline_nothing_held(
    demo, queued, django_capture_on_commit_callbacks
):
    officer = officer_create(username="olivia", email="olivia@company.example")
    req = verified_request(officer=officer, email="stranger@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, django_capture_on_commit_callbacks)
    system_run = run.systems.get()
    assert (system_run.status, system_run.records) == (SystemStatus.DONE, 0)
    assert demo == []


def test_the_demo_data_is_the_same_for_the_same_person():
    from datetime import date

    first = demo_processor.demo_payments("ada.lovelace@demo.example", due_date=date(2026, 6, 1))
    assert first == demo_processor.demo_payments("ADA.lovelace@demo.example ", due_date=date(2026, 6, 1))
    assert first != demo_processor.demo_payments("sven.svensson@demo.example", due_date=date(2026, 6, 1))
    assert [c["charged_at"][:10] for c in first["charges"]] == ["2026-04-12", "2026-01-22", "2025-04-07"]


@pytest.mark.django_db
def test_outside_run_mode_the_demo_is_404_and_it_checks_signatures(client, settings, monkeypatch):
    body = json.dumps({"mode": "health"}).encode()
    headers = signed_headers(body, "/demo/processor/", secret=DEMO_SECRET)
    settings.DSR_DEMO_SYSTEMS = False
    assert client.post("/demo/processor/", body, content_type="application/json", headers=headers).status_code == 404
    settings.DSR_DEMO_SYSTEMS = True
    monkeypatch.setenv("DSR_DEMO_PROCESSOR_SECRET", DEMO_SECRET)
    forged = signed_headers(body, "/demo/processor/", secret="guessed")
    response = client.post("/demo/processor/", body, content_type="application/json", headers=forged)
    assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
    ok = client.post("/demo/processor/", body, content_type="application/json", headers=headers)
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    replay = client.post("/demo/processor/", body, content_type="application/json", headers=headers)
    assert replay.status_code == 409
    assert client.get("/demo/processor/").status_code == 405


@pytest.fixture
def demo_forgets():
    """The demo keeps what it erased in the cache: forgotten after the test, whatever happens."""
    from django.core.cache import cache

    yield
    cache.delete(demo_processor._erased_key("ada.lovelace@demo.example"))


@pytest.mark.django_db(transaction=True)
def test_the_demo_processor_is_told_to_erase_confirms_on_its_callback_and_then_holds_only_what_is_kept(
    demo, demo_forgets, monkeypatch, django_capture_on_commit_callbacks
):
    from dsr.fulfilment.services import erasure, instructions
    from tests.fulfilment import erasure_fakes

    queued = {"plan": [], "erase": [], "verify": [], "system": []}
    monkeypatch.setitem(erasure._queue, "plan", lambda pk: queued["plan"].append(pk))
    monkeypatch.setitem(erasure._queue, "erase", lambda pk, countdown=0: queued["erase"].append(pk))
    monkeypatch.setitem(erasure._queue, "verify", lambda pk: queued["verify"].append(pk))
    told = []
    monkeypatch.setattr(instructions, "_queue", [lambda pk, countdown=0: told.append(pk)])
    confirms = []
    monkeypatch.setattr(
        demo_processor.demo_processor_confirm, "apply_async", lambda args, countdown=0: confirms.append(args)
    )
    officer = officer_create(username="olivia", email="olivia@company.example")
    req = verified_request(officer=officer, request_type="erasure", email="ada.lovelace@demo.example")
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    erasure_fakes.run_queued(queued, capture)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL, [s.error for s in run.systems.all()]
    with capture(execute=True):
        erasure.erasure_approve(request=req, actor=Actor.staff(officer), user_id=officer.pk)
    erasure_fakes.run_queued(queued, capture)
    with capture(execute=True):
        instructions.instruction_execute(system_run_id=told.pop())
    payments = run.systems.get()
    assert payments.status == SystemStatus.WAITING, payments.error
    [args] = confirms
    assert demo_processor.demo_processor_confirm.run(*args) == 200
    erasure_fakes.run_queued(queued, capture)
    payments.refresh_from_db()
    run.refresh_from_db()
    assert payments.status == SystemStatus.DONE and payments.verification["ok"] is True, payments.error
    assert payments.erased["counts"] == {"payment_methods": {"deleted": 1, "updated": 0},
                                         "charges": {"deleted": 0, "updated": 3}}  # fmt: skip
    assert run.state == RunState.RUNNING  # the recipients the map lists for payments are told now
    assert told and all(s.system.startswith("recipient:") for s in run.systems.filter(pk__in=told))
    while told:
        with capture(execute=True):
            instructions.instruction_execute(system_run_id=told.pop())
    erasure_fakes.recipients_confirmed(capture)
    run.refresh_from_db()
    assert run.state == RunState.DONE
    held = demo_processor.demo_held("ada.lovelace@demo.example", due_date=run.due_date)
    assert list(held) == ["charges"] and {c["email"] for c in held["charges"]} == {"[erased]"}
    assert demo_processor.demo_processor_confirm.run(*args) == 409  # a second confirmation is refused

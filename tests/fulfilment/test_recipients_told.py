"""Art 17(2), Art 19 and §7022(b)(3) with the real propagation: once every system has erased (or
corrected) the person, each recipient the map lists for those systems is told through the
instruction channel — by its contact, or through the owner of the system that lists it — the run
waits until each confirmed through the owner's link, and the requester's answer names them with
the date they confirmed. Nothing is passed on while a system of the business failed."""

import re

import pytest

from dsr.fulfilment.models import FulfilmentRun, ManualTask, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import corrections, erasure, propagation
from dsr.models import OutboundEmail
from dsr.services.audit import Actor
from dsr.errors import TransitionNotAllowed
from tests.fulfilment import erasure_fakes as fakes
from tests.fulfilment.correction_shop import correction_shop, shop_backend  # noqa: F401
from tests.fulfilment.erasure_fakes import erasing_systems_install, run_queued
from tests.fulfilment.test_corrections import _decide_all, _read, _started, systems  # noqa: F401
from tests.fulfilment.test_erasure_runs import _approve, _planned

pytestmark = pytest.mark.django_db

# alpha's recipients: one told at its own contact, one through alpha's owner (who passes it on).
MAP = fakes.MAP_ERASING_ONLY.replace(
    "      - name: Parcel carriers\n        category: Service providers (delivery)\n",
    "      - name: Parcel carriers\n        category: Service providers (delivery)\n"
    "        contact: dpo@carriers.example\n"
    "      - name: Ad partners\n        category: Third parties (advertising)\n        shared: true\n",
)
assert "dpo@carriers.example" in MAP


@pytest.fixture
def told_systems(settings, tmp_path, monkeypatch):
    return erasing_systems_install(settings, tmp_path, monkeypatch, MAP)


def _owner_confirms(client, owner: str):
    email = OutboundEmail.objects.filter(template="owner_instruction", to=owner).latest("pk")
    link = re.search(r"http://testserver(/fulfilment/task/[^/\s]+/)", email.body_text).group(1)
    page = client.get(link).content.decode()
    assert "Delete the personal information of the person identified here" in page
    assert "bench1@example.com" in page  # the owner searches by the identity: nothing else is sent
    response = client.post(link, {"answer": "done", "confirm": "yes"})
    assert response.status_code in (200, 302)


def test_the_recipients_are_told_once_the_systems_are_erased_and_the_run_waits_for_them(
    officer, client, told_systems, django_capture_on_commit_callbacks
):
    req, run = _planned(officer, told_systems, django_capture_on_commit_callbacks)
    assert not SystemRun.objects.filter(run=run, system__startswith="recipient:").exists()  # not before approval
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(told_systems, django_capture_on_commit_callbacks, recipients_confirm=False)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING  # every system erased; the recipients not yet confirmed
    carriers = SystemRun.objects.get(run=run, system="recipient:parcel_carriers")
    partners = SystemRun.objects.get(run=run, system="recipient:ad_partners")
    assert (carriers.kind, carriers.status, partners.status) == ("manual", SystemStatus.WAITING, SystemStatus.WAITING)
    assert carriers.instruction["action"] == "erase" and carriers.instruction["items"] == []
    assert ManualTask.objects.get(system_run=carriers).owner_email == "dpo@carriers.example"
    assert ManualTask.objects.get(system_run=partners).owner_email == "alpha@example.com"  # passes it on
    with pytest.raises(TransitionNotAllowed, match="not done yet"):
        erasure.erasure_answer_send(request=req, actor=Actor.staff(officer))
    plan = erasure.erasure_plan_view(run, list(run.systems.order_by("id")))
    assert [s["system"] for s in plan["systems"]] == ["alpha", "beta"]
    assert [(r["recipient"], r["status"]) for r in plan["recipients"]] == [
        ("recipient:parcel_carriers", "waiting"), ("recipient:ad_partners", "waiting"),
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        _owner_confirms(client, "dpo@carriers.example")
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    with django_capture_on_commit_callbacks(execute=True):
        _owner_confirms(client, "alpha@example.com")
    run.refresh_from_db()
    assert run.state == RunState.DONE
    assert run.ledger_entry.systems == ["alpha", "beta"]  # the ledger lists the business's own systems
    message = erasure.erasure_answer_message(FulfilmentRun.objects.get(pk=run.pk), "en")
    assert "We told those who received your information from us to delete it:" in message
    assert re.search(r"- Parcel carriers: confirmed on \w+", message)
    assert "- Ad partners: confirmed on" in message and "recipient:" not in message
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erasure_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    assert req.outcome == "complied"


def test_nothing_is_passed_on_while_a_system_failed(officer, told_systems, django_capture_on_commit_callbacks):
    fakes.BEHAVIOUR["alpha"] = ["fail"]
    req, run = _planned(officer, told_systems, django_capture_on_commit_callbacks)
    _approve(req, officer, django_capture_on_commit_callbacks)
    run_queued(told_systems, django_capture_on_commit_callbacks, recipients_confirm=False)
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert not SystemRun.objects.filter(run=run, system__startswith="recipient:").exists()
    assert not OutboundEmail.objects.filter(template="owner_instruction").exists()


def test_corrections_are_passed_on_to_the_recipients_and_the_run_ends_when_they_confirm(
    officer, client, systems, django_capture_on_commit_callbacks  # noqa: F811
):
    corrections.corrections_recipients_register(propagation.recipients_tell_corrections)  # as wiring does
    req, run = _started(officer, systems, django_capture_on_commit_callbacks)
    run = _decide_all(req, run, officer, django_capture_on_commit_callbacks, systems["queued"])
    assert run.state == RunState.RUNNING  # shop and accounts corrected; their recipients told
    told = {s.system: s for s in SystemRun.objects.filter(run=run, system__startswith="recipient:")}
    assert set(told) == {"recipient:parcel_carriers", "recipient:mail_house"}
    _read(systems["queued"], django_capture_on_commit_callbacks)  # the channel's tasks tell them
    carriers = SystemRun.objects.get(pk=told["recipient:parcel_carriers"].pk)
    assert carriers.status == SystemStatus.WAITING and carriers.instruction["action"] == "correct"
    # Each recipient hears every correction the systems it received data from confirmed.
    values = {(i["field"], i["value"]) for i in carriers.instruction["items"]}
    assert ("name", "Ann Lindqvist") in values
    for recipient in told.values():
        owner = ManualTask.objects.get(system_run=recipient).owner_email
        with django_capture_on_commit_callbacks(execute=True):
            email = OutboundEmail.objects.filter(template="owner_instruction", to=owner).latest("pk")
            link = re.search(r"http://testserver(/fulfilment/task/[^/\s]+/)", email.body_text).group(1)
            assert client.post(link, {"answer": "done", "confirm": "yes"}).status_code in (200, 302)
    run.refresh_from_db()
    assert run.state == RunState.DONE
    assert SystemRun.objects.filter(run=run, system__startswith="recipient:").count() == 2  # told once each
    message = corrections.correction_answer_message(run, "sv")
    assert "Vi har meddelat rättelserna till dem som har fått dina uppgifter från oss:" in message
    assert re.search(r"- Mail house: bekräftade den \w+", message) and "- Parcel carriers: bekräftade den" in message

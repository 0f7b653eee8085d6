"""Restriction and opt-outs passed on (issue 11): which systems and recipients are told for each
action; a run started through the one door tells them through the instruction channel; the
django system sets its flags at once; a system with no flag, and each recipient, is told through
an owner and confirms later (`instruction_confirm`, as a callback or the owner's link would); the
request completes only when every one confirmed, with the answer (en/sv/nl) naming who was told
and confirmed and the suppression entry written; a failure flags it and is told again; a
redelivered task sets nothing twice; the API and the officer's page show each state.

The manual kind's instruction handler is another part of issue 11: here a test double stands for
it (it answers "asked the owner", as the owner's task would), so the waiting and confirming path
is exercised; the sql/django handlers are the real ones."""

import textwrap
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from dsr.errors import TransitionNotAllowed
from dsr.event_types import EventType
from dsr.fulfilment.connectors import base as connectors
from dsr.fulfilment.connectors.base import Instructed, Instruction
from dsr.fulfilment.datamap import datamap_parse
from dsr.fulfilment.models import AccessPackage, FulfilmentRun, PackageKind, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import instructions, propagation, runs, sweep
from dsr.models import Outcome, Status, Suppression
from dsr.services.audit import Actor
from tests.factories import officer_create, request_create, staff_token_key
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.test_dashboard_fulfilment import PASSWORD
from tests.support.shop.models import AdProfile, Customer

pytestmark = pytest.mark.django_db

MAP = textwrap.dedent(
    """
    systems:
      - name: ads
        owner: ads@example.com
        kind: django
        recipients:
          - {name: Ad network, category: Third parties (advertising), shared: true, contact: dpo@adnet.example}
          - {name: Parcel carriers, category: Service providers (delivery)}
        collections:
          - name: profiles
            model: shop.AdProfile
            identities: {email: email}
            flags: {restrict: restricted, opt_out_sale: sale_opted_out, limit_sensitive: sensitive_limited}
            fields: {id: none, email: identifiers, segment: sensitive_personal_information, restricted: none,
                     sale_opted_out: none, sensitive_limited: none}
      - name: accounts
        owner: accounts@example.com
        kind: django
        recipients:
          - {name: Data broker, category: Third parties (data brokers), sold: true, system: crm}
          - {name: Ad network, category: Third parties (advertising), shared: true, contact: dpo@adnet.example}
        collections:
          - name: customer
            model: shop.Customer
            identities: {email: email}
            fields: {id: none, email: identifiers, name: identifiers, phone: identifiers, created_at: none}
      - name: crm
        owner: sales@example.com
        kind: manual
        collections:
          - name: leads
            primary_key: email
            identities: {email: email}
            fields: {email: identifiers}
    """
)
EMAIL = "ann@example.com"


@pytest.fixture
def told(settings, tmp_path, monkeypatch):
    """The map above, the queue recorded (the test runs what a worker would), and a stand-in for
    the manual kind's handler (another part of issue 11) that asks the owner and waits."""
    path = tmp_path / "datamap.yaml"
    path.write_text(MAP)
    settings.DSR_DATAMAP = str(path)
    state = {"queued": [], "owners": []}

    def manual_handler(connector, subject, instruction):
        state["owners"].append((subject.task_key.split(":", 2)[-1], connector.system.owner, instruction.action))
        return Instructed(confirmed=False, pending=f"asked {connector.system.owner}")

    for action in ("restrict", "opt_out_sale", "limit_sensitive"):
        monkeypatch.setitem(connectors.INSTRUCTION_HANDLERS, ("manual", action), manual_handler)
    monkeypatch.setattr(instructions, "_queue", [lambda pk, countdown: state["queued"].append(pk)])
    AdProfile.objects.create(email=EMAIL, segment="health")
    AdProfile.objects.create(email="bob@example.com", segment="cooks")
    return state


def _work(state, capture):
    while state["queued"]:
        pk = state["queued"].pop(0)
        with capture(execute=True):
            instructions.instruction_execute(system_run_id=pk)


def _start(req, officer, capture):
    with capture(execute=True):
        return runs.fulfilment_start(request=req, actor=Actor.staff(officer))


def _opt_out(request_type="opt_out_sale", **kwargs):
    req = request_create(request_type=request_type, email=EMAIL, **kwargs)
    assert req.status == Status.IN_PROGRESS and req.verified_at is None  # §7060(b): no verification
    return req


def _confirm(run, name, capture, by="owner"):
    system_run = run.systems.get(system=name)
    with capture(execute=True):
        instructions.instruction_confirm(system_run_id=system_run.pk, counts={}, by=by)


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


# --- Who is told ----------------------------------------------------------------------------------


def test_which_systems_and_recipients_are_told_for_each_action():
    datamap = datamap_parse(MAP.encode())
    names = {a: [s.name for s in propagation.systems_to_tell(datamap, a)] for a in propagation.ACTIONS.values()}
    # ads shares and flags; accounts sells (its recipient); crm neither.
    assert names["opt_out_sale"] == ["ads", "accounts"]
    assert names["limit_sensitive"] == ["ads"]  # the only one holding sensitive personal information
    assert names["restrict"] == ["ads", "accounts", "crm"]  # Art 18: every system that may hold it
    told = datamap.systems[:2]
    recipients = {a: [r.key for r, _ in propagation.recipients_of(list(told), a)] for a in propagation.ACTIONS.values()}
    # §7026(f): only those it was sold or shared to, once (the ad network is listed twice).
    assert recipients["opt_out_sale"] == ["recipient:ad_network", "recipient:data_broker"]
    assert recipients["restrict"] == ["recipient:ad_network", "recipient:parcel_carriers", "recipient:data_broker"]


def test_the_recipients_resolve_to_the_system_or_owner_that_is_told():
    datamap = datamap_parse(MAP.encode())
    network = propagation.recipient_system(datamap, "recipient:ad_network")
    assert (network.kind, network.owner) == ("manual", "dpo@adnet.example")
    carriers = propagation.recipient_system(datamap, "recipient:parcel_carriers")
    assert (carriers.kind, carriers.owner) == ("manual", "ads@example.com")  # passed on by the listing system's owner
    assert "Pass this on to Parcel carriers" in carriers.connection["instructions"]
    assert propagation.recipient_system(datamap, "recipient:data_broker").name == "crm"
    assert propagation.recipient_system(datamap, "recipient:nobody") is None
    assert propagation.recipient_system(datamap, "ads") is None


# --- The run --------------------------------------------------------------------------------------


def test_an_opt_out_completes_only_when_every_system_and_recipient_confirmed(
    officer, told, django_capture_on_commit_callbacks, mailoutbox
):
    req = _opt_out()
    run = _start(req, officer, django_capture_on_commit_callbacks)
    assert run.package_kind == PackageKind.OPT_OUT
    runs_by_name = {s.system: s for s in run.systems.order_by("id")}
    assert list(runs_by_name) == ["ads", "accounts", "recipient:ad_network", "recipient:data_broker"]
    # One place decides the kind: accounts has no opt-out flag, so its owner is told.
    assert {n: s.kind for n, s in runs_by_name.items()} == {
        "ads": "django", "accounts": "manual", "recipient:ad_network": "manual", "recipient:data_broker": "manual",
    }  # fmt: skip
    assert runs_by_name["ads"].instruction["items"] == [
        {"collection": "profiles", "keys": [], "set": {"sale_opted_out": True}}
    ]
    assert "§1798.120" in runs_by_name["accounts"].instruction["note"]
    _work(told, django_capture_on_commit_callbacks)
    assert list(AdProfile.objects.order_by("id").values_list("sale_opted_out", flat=True)) == [True, False]
    assert sorted(told["owners"]) == [
        ("accounts", "accounts@example.com", "opt_out_sale"),
        ("recipient:ad_network", "dpo@adnet.example", "opt_out_sale"),
        ("recipient:data_broker", "sales@example.com", "opt_out_sale"),  # through crm, the system for it
    ]
    statuses = dict(run.systems.values_list("system", "status"))
    assert statuses["ads"] == SystemStatus.DONE and statuses["accounts"] == SystemStatus.WAITING
    mailoutbox.clear()
    _confirm(run, "accounts", django_capture_on_commit_callbacks)
    _confirm(run, "recipient:ad_network", django_capture_on_commit_callbacks)
    req.refresh_from_db()
    run.refresh_from_db()
    assert req.status == Status.IN_PROGRESS and run.state == RunState.RUNNING  # one still to confirm
    assert not Suppression.objects.exists() and mailoutbox == []
    _confirm(run, "recipient:data_broker", django_capture_on_commit_callbacks)
    req.refresh_from_db()
    run.refresh_from_db()
    assert run.state == RunState.DONE and req.status == Status.COMPLETED and req.outcome == Outcome.COMPLIED
    assert Suppression.objects.filter(scope="sale_sharing").count() == 1  # written as before
    assert "We have stopped selling and sharing your personal information." in req.response_message
    assert "- ads: confirmed on " in req.response_message
    assert (
        "- Ad network: confirmed on " in req.response_message and "- Data broker: confirmed on " in req.response_message
    )
    assert "third parties and service providers we told" in req.response_message
    assert len(mailoutbox) == 1 and "Data broker: confirmed" in mailoutbox[0].body
    finished = _events(req, EventType.FULFILMENT_FINISHED)
    assert finished[0].data == {"run": run.pk, "state": "done", "records": 1, "failed": []}


def test_a_restriction_marks_every_system_and_the_answer_is_in_the_requesters_language(
    officer, told, django_capture_on_commit_callbacks, client, mailoutbox
):
    Customer.objects.create(email=EMAIL, name="Ann", created_at="2026-01-01T00:00:00Z")
    req = verified_request(officer=officer, request_type="restriction", email=EMAIL, regime="gdpr", language="sv")
    run = _start(req, officer, django_capture_on_commit_callbacks)
    assert run.package_kind == PackageKind.RESTRICTION
    names = list(run.systems.order_by("id").values_list("system", flat=True))
    # The data broker stands for crm, which is told as a system already: told once.
    assert names == ["ads", "accounts", "crm", "recipient:ad_network", "recipient:parcel_carriers"]
    _work(told, django_capture_on_commit_callbacks)
    assert list(AdProfile.objects.order_by("id").values_list("restricted", flat=True)) == [True, False]
    for name in ("accounts", "crm", "recipient:ad_network", "recipient:parcel_carriers"):
        _confirm(run, name, django_capture_on_commit_callbacks)
    req.refresh_from_db()
    assert req.status == Status.COMPLETED
    assert req.response_message.startswith("Vi har begränsat användningen av dina personuppgifter")
    assert "crm: bekräftat den " in req.response_message
    assert "De tredje parter och tjänsteleverantörer som vi underrättade" in req.response_message
    assert "Parcel carriers: bekräftat den " in mailoutbox[-1].body and mailoutbox[-1].to == [EMAIL]
    page = client.get(f"/r/{req.public_token}/").content.decode()
    assert "Vi har begränsat användningen av dina personuppgifter" in page and "Ad network: bekräftat den" in page
    assert not Suppression.objects.exists()  # a restriction is no opt-out


@pytest.mark.parametrize(
    "language,first",
    [
        ("en", "We have limited the use of your sensitive personal information"),
        ("nl", "We hebben het gebruik van uw gevoelige persoonsgegevens beperkt"),
    ],
)
def test_a_limit_of_sensitive_data_tells_the_systems_holding_it(
    officer, told, django_capture_on_commit_callbacks, language, first
):
    req = _opt_out("limit_sensitive", language=language)
    run = _start(req, officer, django_capture_on_commit_callbacks)
    assert list(run.systems.order_by("id").values_list("system", flat=True)) == [
        "ads", "recipient:ad_network", "recipient:parcel_carriers",
    ]  # fmt: skip
    _work(told, django_capture_on_commit_callbacks)
    assert list(AdProfile.objects.order_by("id").values_list("sensitive_limited", flat=True)) == [True, False]
    _confirm(run, "recipient:ad_network", django_capture_on_commit_callbacks)
    _confirm(run, "recipient:parcel_carriers", django_capture_on_commit_callbacks)
    req.refresh_from_db()
    assert req.status == Status.COMPLETED and req.response_message.startswith(first)
    assert Suppression.objects.filter(scope="sensitive").count() == 1


def test_a_redelivered_task_sets_nothing_twice_and_a_second_confirmation_changes_nothing(
    officer, told, django_capture_on_commit_callbacks, monkeypatch
):
    req = _opt_out()
    run = _start(req, officer, django_capture_on_commit_callbacks)
    ads = run.systems.get(system="ads")
    calls = []
    real = connectors.INSTRUCTION_HANDLERS[("django", "opt_out_sale")]
    monkeypatch.setitem(
        connectors.INSTRUCTION_HANDLERS,
        ("django", "opt_out_sale"),
        lambda c, s, i: calls.append(s.task_key) or real(c, s, i),
    )
    for _ in range(2):  # the task delivered twice
        with django_capture_on_commit_callbacks(execute=True):
            instructions.instruction_execute(system_run_id=ads.pk)
    assert len(calls) == 1
    ads.refresh_from_db()
    assert ads.status == SystemStatus.DONE and ads.instructed["counts"] == {"profiles": 1}
    first_confirmed = ads.confirmed_at
    confirmed = [e for e in _events(req, EventType.INSTRUCTION_CONFIRMED) if e.data["system"] == "ads"]
    assert len(confirmed) == 1
    instructions.instruction_confirm(system_run_id=ads.pk, counts={"profiles": 9}, by="late callback")
    ads.refresh_from_db()
    assert ads.confirmed_at == first_confirmed and ads.instructed["counts"] == {"profiles": 1}
    assert len([e for e in _events(req, EventType.INSTRUCTION_CONFIRMED) if e.data["system"] == "ads"]) == 1


def test_a_refusal_fails_the_run_flags_the_request_and_the_officer_tells_it_again(
    officer, told, django_capture_on_commit_callbacks
):
    req = _opt_out()
    run = _start(req, officer, django_capture_on_commit_callbacks)
    _work(told, django_capture_on_commit_callbacks)
    for name in ("accounts", "recipient:ad_network"):
        _confirm(run, name, django_capture_on_commit_callbacks)
    broker = run.systems.get(system="recipient:data_broker")
    with django_capture_on_commit_callbacks(execute=True):
        instructions.instruction_refuse(system_run_id=broker.pk, error="we hold no such person", by="owner")
    run.refresh_from_db()
    req.refresh_from_db()
    assert run.state == RunState.FAILED and req.is_open and req.flagged_at
    assert "recipient:data_broker" in req.flag_reason
    with pytest.raises(TransitionNotAllowed, match="only a failed system is told again"):
        propagation.propagation_retry(request=req, system="ads", actor=Actor.staff(officer))
    with django_capture_on_commit_callbacks(execute=True):
        propagation.propagation_retry(request=req, system="recipient:data_broker", actor=Actor.staff(officer))
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and _events(req, EventType.FULFILMENT_SYSTEM_RETRIED)
    _work(told, django_capture_on_commit_callbacks)
    _confirm(run, "recipient:data_broker", django_capture_on_commit_callbacks)
    req.refresh_from_db()
    assert req.status == Status.COMPLETED


def test_a_second_start_is_refused_while_the_systems_are_told(officer, told, django_capture_on_commit_callbacks):
    req = _opt_out()
    _start(req, officer, django_capture_on_commit_callbacks)
    with pytest.raises(TransitionNotAllowed, match="already being told"):
        _start(req, officer, django_capture_on_commit_callbacks)
    assert FulfilmentRun.objects.filter(request=req).count() == 1


def test_an_unverified_restriction_is_not_started(officer, told, django_capture_on_commit_callbacks):
    req = request_create(request_type="restriction", email=EMAIL)
    with pytest.raises(TransitionNotAllowed, match="only once the request is verified"):
        _start(req, officer, django_capture_on_commit_callbacks)
    assert not FulfilmentRun.objects.filter(request=req).exists() and told["queued"] == []


# --- The API and the officer's page -------------------------------------------------------------------


def test_the_api_shows_each_system_told_with_its_state_and_retries_a_failed_one(
    officer, staff_api, told, django_capture_on_commit_callbacks
):
    req = _opt_out()
    base = f"/api/v1/staff/requests/{req.reference}/fulfilment/"
    assert staff_api.get(base).json()["told"] is None
    with django_capture_on_commit_callbacks(execute=True):
        started = staff_api.post(base + "start/")
    assert started.status_code == 202
    _work(told, django_capture_on_commit_callbacks)
    broker = SystemRun.objects.get(run__request=req, system="recipient:data_broker")
    with django_capture_on_commit_callbacks(execute=True):
        instructions.instruction_refuse(system_run_id=broker.pk, error="<b>no</b>", by="owner")
    body = staff_api.get(base).json()
    states = {t["name"]: t["state"] for t in body["told"]["systems"]}
    assert states == {
        "ads": "confirmed", "accounts": "waiting", "recipient:ad_network": "waiting", "recipient:data_broker": "failed",
    }  # fmt: skip
    ads = body["told"]["systems"][0]
    assert ads["confirmed_at"] and ads["confirmed_by"] == "connector" and ads["counts"] == {"profiles": 1}
    assert body["told"]["systems"][1]["waiting_since"] and body["told"]["action"] == "opt_out_sale"
    reviewer = officer_create(username="rita", email="rita@company.example", role="reviewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(reviewer)}")
    assert client.post(base + "systems/recipient:data_broker/retry/").status_code == 403
    assert APIClient().get(base).status_code in (401, 403)
    refused = staff_api.post(base + "systems/ads/retry/")
    assert refused.status_code == 409 and refused["Content-Type"].startswith("application/problem+json")
    unknown = staff_api.post(base + "systems/nowhere/retry/")
    assert unknown.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        retried = staff_api.post(base + "systems/recipient:data_broker/retry/")
    assert retried.status_code == 200
    assert {t["name"]: t["state"] for t in retried.json()["told"]["systems"]}["recipient:data_broker"] == "told"


def test_the_officers_page_lists_who_was_told_escaped(officer, told, django_capture_on_commit_callbacks, client):
    req = _opt_out()
    run = _start(req, officer, django_capture_on_commit_callbacks)
    _work(told, django_capture_on_commit_callbacks)
    broker = run.systems.get(system="recipient:data_broker")
    with django_capture_on_commit_callbacks(execute=True):
        instructions.instruction_refuse(system_run_id=broker.pk, error="<script>x</script>", by="owner")
    client.login(username=officer.username, password=PASSWORD)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Passed on to the systems and recipients" in page
    assert 'data-system="ads" data-told="confirmed"' in page
    assert 'data-system="recipient:data_broker" data-told="failed"' in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page
    assert "Tell again" in page


def test_an_opt_out_is_passed_on_as_soon_as_it_is_received(told, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        req = request_create(request_type="opt_out_sale", email=EMAIL)
    run = FulfilmentRun.objects.get(request=req)
    assert run.package_kind == PackageKind.OPT_OUT and run.started_by == "fulfilment"
    assert len(told["queued"]) == 4  # every system and recipient, queued once the intake committed
    settings.DSR_FULFILMENT_AUTO_START = False
    with django_capture_on_commit_callbacks(execute=True):
        other = request_create(request_type="limit_sensitive", email="bob@example.com")
    assert not FulfilmentRun.objects.filter(request=other).exists()  # the officer starts it


def test_recipients_tell_passes_any_action_on_once_per_recipient(officer, told, django_capture_on_commit_callbacks):
    """The hook for erasure and corrections (Art 19): their own instruction, to each recipient once."""
    req = verified_request(officer=officer, request_type="rectification", email=EMAIL)
    run = FulfilmentRun.objects.create(
        request=req, datamap_version="v", datamap_path="p", package_kind=PackageKind.CORRECTION,
        due_date=req.respond_by, started_by="test", started_at=timezone.now(),
    )  # fmt: skip
    datamap = datamap_parse(MAP.encode())
    correct = Instruction(
        action="correct", items=({"collection": "customer", "key": 1, "field": "name", "value": "Ann B"},),
        note="Correct the name.",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        sent = propagation.recipients_tell(run=run, instruction=correct, systems=list(datamap.systems))
    assert [s.system for s in sent] == ["recipient:ad_network", "recipient:parcel_carriers", "recipient:data_broker"]
    network = SystemRun.objects.get(run=run, system="recipient:ad_network")
    assert network.kind == "manual" and network.instruction["items"] == [dict(correct.items[0])]
    assert network.instruction["note"].startswith("Correct the name.\nYou are listed as a recipient of this data: Ad")
    assert len(told["queued"]) == 3
    with django_capture_on_commit_callbacks(execute=True):
        again = propagation.recipients_tell(run=run, instruction=correct, systems=list(datamap.systems))
    assert again == [] and len(told["queued"]) == 3  # each recipient is told once per run
    assert SystemRun.objects.filter(run=run).count() == 3


def test_the_sweep_builds_no_access_package_for_an_opt_out(officer, told, django_capture_on_commit_callbacks):
    """A run near its due date with a system done is packaged only when it is a search."""
    req = _opt_out()
    run = _start(req, officer, django_capture_on_commit_callbacks)
    _work(told, django_capture_on_commit_callbacks)
    FulfilmentRun.objects.filter(pk=run.pk).update(due_date=timezone.localdate())
    assert run.systems.filter(status=SystemStatus.DONE).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.packages_due_build() == 0
        assert sweep.packages_stalled_requeue() == 0
    assert not AccessPackage.objects.exists()


def test_an_opt_out_has_no_access_package_to_build(officer, staff_api, told, django_capture_on_commit_callbacks):
    req = _opt_out()
    _start(req, officer, django_capture_on_commit_callbacks)
    _work(told, django_capture_on_commit_callbacks)
    refused = staff_api.post(f"/api/v1/staff/requests/{req.reference}/fulfilment/package/")
    assert refused.status_code == 409 and "not answered with an access package" in refused.json()["detail"]
    assert not AccessPackage.objects.exists()


def test_the_systems_api_shows_the_flags_and_how_each_recipient_is_told(staff_api, told):
    systems = {s["name"]: s for s in staff_api.get("/api/v1/staff/systems/").json()}
    assert systems["ads"]["collections"][0]["flags"] == {
        "restrict": "restricted", "opt_out_sale": "sale_opted_out", "limit_sensitive": "sensitive_limited",
    }  # fmt: skip
    network, carriers = systems["ads"]["recipients"]
    assert (network["contact"], network["system"], carriers["contact"]) == ("dpo@adnet.example", "", "")
    assert systems["accounts"]["recipients"][0]["system"] == "crm"


def test_the_sweep_flags_a_request_still_unconfirmed_near_its_due_date_once(
    officer, told, django_capture_on_commit_callbacks
):
    req = _opt_out()
    run = _start(req, officer, django_capture_on_commit_callbacks)
    _work(told, django_capture_on_commit_callbacks)
    assert sweep.fulfilment_sweep()["propagations_flagged"] == 0  # 15 business days away
    FulfilmentRun.objects.filter(pk=run.pk).update(due_date=timezone.localdate() + timedelta(days=2))
    assert sweep.fulfilment_sweep()["propagations_flagged"] == 1
    req.refresh_from_db()
    assert req.flagged_at and "not yet confirmed by accounts, recipient:ad_network, recipient:data_broker" in (
        req.flag_reason
    )
    assert sweep.fulfilment_sweep()["propagations_flagged"] == 0  # once
    assert len(_events(req, EventType.FLAGGED)) == 1

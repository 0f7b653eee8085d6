"""The instruction channel (services/instructions.py): a system told an instruction through its
connector's handler, confirmed now or later, retried while the error may pass, failed visibly;
a redelivered task or a second confirmation changes nothing; the owning service hears of each
outcome; lost tasks are queued again by the sweep."""

import textwrap
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from dsr.event_types import EventType
from dsr.fulfilment.connectors import base as connectors
from dsr.fulfilment.connectors.base import ConnectorError, ConnectorMisconfigured, Instructed, Instruction
from dsr.fulfilment.datamap import datamap_load
from dsr.fulfilment.models import FulfilmentRun, PackageKind, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import instructions, sweep
from tests.fulfilment.conftest import verified_request

pytestmark = pytest.mark.django_db

MAP = textwrap.dedent(
    """
    systems:
      - name: alpha
        owner: alpha@example.com
        kind: sql
        connection: {dsn_env: ALPHA_DSN, retries: 1}
        collections:
          - name: people
            identities: {email: email}
            fields: {id: none, email: identifiers}
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
RESTRICT = Instruction(action="restrict", items=({"collection": "people", "keys": [1], "set": {"held": True}},))


@pytest.fixture
def channel(settings, tmp_path, monkeypatch):
    """A map with an sql and a manual system, handlers that do what each test says, the queue
    recorded (the test runs what a worker would), and the outcomes the owning service hears."""
    path = tmp_path / "datamap.yaml"
    path.write_text(MAP)
    settings.DSR_DATAMAP = str(path)
    state = {"queued": [], "told": [], "outcomes": [], "sql": ["confirm"]}

    def sql_handler(connector, subject, instruction):
        state["told"].append((connector.system.name, subject.reference, instruction.action))
        step = state["sql"].pop(0) if len(state["sql"]) > 1 else state["sql"][0]
        if step == "timeout":
            raise ConnectorError("alpha: timed out")
        if step == "refused":
            raise ConnectorMisconfigured("alpha: the role may not write")
        if step == "bug":
            raise KeyError("people")
        return Instructed(confirmed=True, counts={"people": 1})

    def manual_handler(connector, subject, instruction):
        state["told"].append((connector.system.name, subject.reference, instruction.action))
        return Instructed(confirmed=False, pending="asked sales@example.com")

    monkeypatch.setitem(connectors.INSTRUCTION_HANDLERS, ("sql", "restrict"), sql_handler)
    monkeypatch.setitem(connectors.INSTRUCTION_HANDLERS, ("manual", "restrict"), manual_handler)
    monkeypatch.setattr(instructions, "_queue", [lambda pk, countdown: state["queued"].append((pk, countdown))])
    monkeypatch.setitem(instructions._outcome_handlers, PackageKind.RESTRICTION, state["outcomes"].append)
    return state


def _run(officer):
    req = verified_request(officer=officer, request_type="restriction")
    datamap = datamap_load()
    return FulfilmentRun.objects.create(
        request=req, datamap_version=datamap.version, datamap_path=datamap.path,
        package_kind=PackageKind.RESTRICTION, due_date=req.respond_by, started_by="test", started_at=timezone.now(),
    )  # fmt: skip


def _send(run, capture, **instructions_by_system):
    with capture(execute=True):
        return instructions.instructions_send(run=run, instructions=instructions_by_system)


def _work(state, capture):
    """Run every queued task, and those they queue, like a worker."""
    while state["queued"]:
        pk, _countdown = state["queued"].pop(0)
        with capture(execute=True):
            instructions.instruction_execute(system_run_id=pk)


def _events(run, kind):
    return [e for e in run.request.events.all() if e.event_type == kind]


def test_a_system_that_confirms_at_once_is_done_and_its_service_hears(
    officer, channel, django_capture_on_commit_callbacks
):
    run = _run(officer)
    (alpha,) = _send(run, django_capture_on_commit_callbacks, alpha=RESTRICT)
    assert [pk for pk, _ in channel["queued"]] == [alpha.pk]
    alpha.refresh_from_db()
    assert alpha.status == SystemStatus.PENDING and alpha.kind == "sql"
    assert alpha.instruction == {"action": "restrict", "items": [dict(RESTRICT.items[0])], "note": ""}
    _work(channel, django_capture_on_commit_callbacks)
    alpha.refresh_from_db()
    assert channel["told"] == [("alpha", run.request.reference, "restrict")]
    assert alpha.status == SystemStatus.DONE and alpha.confirmed_at and alpha.records == 1
    assert alpha.instructed["confirmed"] is True and alpha.instructed["by"] == "connector"
    assert alpha.instructed["counts"] == {"people": 1}
    (confirmed,) = _events(run, EventType.INSTRUCTION_CONFIRMED)
    assert confirmed.data == {
        "run": run.pk, "system": "alpha", "action": "restrict", "counts": {"people": 1}, "confirmed_by": "connector",
    }  # fmt: skip
    assert channel["outcomes"] == [run.pk]


def test_a_waiting_system_is_done_when_it_confirms_and_a_second_confirmation_changes_nothing(
    officer, channel, django_capture_on_commit_callbacks
):
    run = _run(officer)
    (crm,) = _send(run, django_capture_on_commit_callbacks, crm=RESTRICT)
    _work(channel, django_capture_on_commit_callbacks)
    crm.refresh_from_db()
    assert crm.status == SystemStatus.WAITING and crm.requested_at and not crm.confirmed_at
    assert crm.instructed["pending"] == "asked sales@example.com"
    assert _events(run, EventType.INSTRUCTION_SENT)[0].data["asked"] == "asked sales@example.com"
    assert channel["outcomes"] == []
    instructions.instruction_confirm(system_run_id=crm.pk, counts={"leads": 2}, by="owner sales@example.com")
    instructions.instruction_confirm(system_run_id=crm.pk, counts={"leads": 9}, by="owner sales@example.com")
    crm.refresh_from_db()
    assert crm.status == SystemStatus.DONE and crm.records == 2
    assert crm.instructed["pending"] == "asked sales@example.com" and crm.instructed["by"] == "owner sales@example.com"
    assert len(_events(run, EventType.INSTRUCTION_CONFIRMED)) == 1
    assert channel["outcomes"] == [run.pk]


def test_a_redelivered_task_tells_nothing_twice(officer, channel, django_capture_on_commit_callbacks):
    run = _run(officer)
    (alpha,) = _send(run, django_capture_on_commit_callbacks, alpha=RESTRICT)
    _work(channel, django_capture_on_commit_callbacks)
    instructions.instruction_execute(system_run_id=alpha.pk)
    assert len(channel["told"]) == 1
    # A system claimed by a live attempt is left to it; one whose lease ran out is told again.
    (crm,) = _send(run, django_capture_on_commit_callbacks, crm=RESTRICT)
    SystemRun.objects.filter(pk=crm.pk).update(
        status=SystemStatus.RUNNING, lease_until=timezone.now() + timedelta(minutes=5)
    )
    instructions.instruction_execute(system_run_id=crm.pk)
    assert len(channel["told"]) == 1
    SystemRun.objects.filter(pk=crm.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    instructions.instruction_execute(system_run_id=crm.pk)
    assert [t[0] for t in channel["told"]] == ["alpha", "crm"]


def test_an_error_that_may_pass_is_retried_with_backoff_then_fails_visibly(
    officer, channel, django_capture_on_commit_callbacks, settings
):
    settings.DSR_FULFILMENT_RETRY_SECONDS = 30
    channel["sql"][:] = ["timeout", "timeout", "timeout"]
    run = _run(officer)
    (alpha,) = _send(run, django_capture_on_commit_callbacks, alpha=RESTRICT)
    channel["queued"].clear()
    with django_capture_on_commit_callbacks(execute=True):
        instructions.instruction_execute(system_run_id=alpha.pk)
    alpha.refresh_from_db()
    assert alpha.status == SystemStatus.PENDING and alpha.error == "alpha: timed out"
    assert channel["queued"] == [(alpha.pk, 30)]  # the map's retries: 1 — one more try
    _work(channel, django_capture_on_commit_callbacks)
    alpha.refresh_from_db()
    assert alpha.status == SystemStatus.FAILED and alpha.attempts == 2 and alpha.finished_at
    failed = _events(run, EventType.INSTRUCTION_FAILED)
    assert [(e.data["attempts"], e.data["final"]) for e in failed] == [(1, False), (2, True)]
    assert channel["outcomes"] == [run.pk]


def test_an_error_that_cannot_pass_and_a_handler_bug_fail_without_harming_the_others(
    officer, channel, django_capture_on_commit_callbacks
):
    channel["sql"][:] = ["refused"]
    run = _run(officer)
    alpha, crm = _send(run, django_capture_on_commit_callbacks, alpha=RESTRICT, crm=RESTRICT)
    _work(channel, django_capture_on_commit_callbacks)
    alpha.refresh_from_db()
    crm.refresh_from_db()
    assert alpha.status == SystemStatus.FAILED and alpha.attempts == 1 and "may not write" in alpha.error
    assert crm.status == SystemStatus.WAITING
    channel["sql"][:] = ["bug", "confirm"]
    with django_capture_on_commit_callbacks(execute=True):
        instructions.instruction_retell(system_run_id=alpha.pk)
    _work(channel, django_capture_on_commit_callbacks)
    alpha.refresh_from_db()
    assert alpha.status == SystemStatus.DONE and alpha.attempts == 2  # the bug was retried once, then it worked
    assert "unexpected error: KeyError" in _events(run, EventType.INSTRUCTION_FAILED)[-1].data["reason"]


def test_the_owner_refuses_with_a_reason_and_a_late_confirmation_is_ignored(
    officer, channel, django_capture_on_commit_callbacks
):
    run = _run(officer)
    (crm,) = _send(run, django_capture_on_commit_callbacks, crm=RESTRICT)
    _work(channel, django_capture_on_commit_callbacks)
    instructions.instruction_refuse(system_run_id=crm.pk, error="The sheet was archived.", by="owner")
    instructions.instruction_confirm(system_run_id=crm.pk, counts={"leads": 1}, by="owner")
    crm.refresh_from_db()
    assert crm.status == SystemStatus.FAILED and crm.error == "The sheet was archived." and not crm.confirmed_at
    assert _events(run, EventType.INSTRUCTION_FAILED)[0].data["by"] == "owner"
    assert _events(run, EventType.INSTRUCTION_CONFIRMED) == []
    # A confirmation for a run no longer running (cancelled) changes nothing either.
    (alpha,) = _send(run, django_capture_on_commit_callbacks, alpha=RESTRICT)
    FulfilmentRun.objects.filter(pk=run.pk).update(state=RunState.CANCELLED)
    channel["queued"].clear()
    instructions.instruction_execute(system_run_id=alpha.pk)
    instructions.instruction_confirm(system_run_id=alpha.pk, counts={}, by="owner")
    alpha.refresh_from_db()
    assert alpha.status == SystemStatus.PENDING and channel["told"] == [("crm", run.request.reference, "restrict")]


def test_a_name_the_map_does_not_know_is_refused_unless_a_resolver_knows_it(
    officer, channel, django_capture_on_commit_callbacks, monkeypatch
):
    run = _run(officer)
    with pytest.raises(ValueError, match="recipient:carrier is not a system of the data map"):
        _send(run, django_capture_on_commit_callbacks, **{"recipient:carrier": RESTRICT})
    crm = datamap_load().system("crm")
    resolver = lambda dm, name: crm if name == "recipient:carrier" else None  # noqa: E731
    monkeypatch.setattr(instructions, "_system_resolvers", [resolver])
    (carrier,) = _send(run, django_capture_on_commit_callbacks, **{"recipient:carrier": RESTRICT})
    _work(channel, django_capture_on_commit_callbacks)
    carrier.refresh_from_db()
    assert carrier.kind == "manual" and carrier.status == SystemStatus.WAITING
    assert channel["told"] == [("crm", run.request.reference, "restrict")]


def test_the_sweep_queues_lost_tasks_again_and_lists_who_has_not_confirmed(
    officer, channel, django_capture_on_commit_callbacks
):
    run = _run(officer)
    alpha, crm = _send(run, django_capture_on_commit_callbacks, alpha=RESTRICT, crm=RESTRICT)
    channel["queued"].clear()  # the broker lost both tasks
    assert instructions.instructions_stalled_requeue() == 0  # too soon: a worker may still take them
    with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep.systems_stalled_requeue() == 2
        assert sorted(pk for pk, _ in channel["queued"]) == [alpha.pk, crm.pk]
        _work(channel, django_capture_on_commit_callbacks)
        assert instructions.instructions_stalled_requeue() == 0
        assert list(instructions.instructions_waiting(older_than=timedelta(days=1))) == []
    with time_machine.travel(timezone.now() + timedelta(days=2), tick=False):
        assert list(instructions.instructions_waiting(older_than=timedelta(days=1))) == [crm]


def test_an_unknown_action_is_refused_before_anything_is_stored(officer, channel):
    run = _run(officer)
    system_run = SystemRun.objects.create(run=run, system="alpha", kind="sql")
    with pytest.raises(ValueError, match="unknown instruction action 'shred'"):
        instructions.instruction_dispatch(system_run=system_run, instruction=Instruction(action="shred"))
    system_run.refresh_from_db()
    assert system_run.instruction == {}

"""A fulfilment run: started for a verified request to know, one state per system, each system's
task idempotent, failures retried then shown, the others unaffected; and its staff API. The
systems here are fakes of the connector interface (the real connectors have their own tests)."""

import hashlib
import textwrap

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from dsr.errors import TransitionNotAllowed
from dsr.event_types import EventType
from dsr.fulfilment.connectors import base as connectors
from dsr.fulfilment.connectors.base import AmbiguousIdentity, Connector, ConnectorError, Exported, Found, Health
from dsr.fulfilment.models import FulfilmentRun, RunState, SystemHealth, SystemRun, SystemStatus
from dsr.fulfilment.results import result_records
from dsr.fulfilment.services import runs
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_approve, request_cancel
from tests.factories import officer_create, request_create, staff_token_key
from tests.fulfilment.conftest import verified_request

MAP = textwrap.dedent(
    """
    systems:
      - name: alpha
        owner: alpha@example.com
        kind: sql
        connection: {dsn_env: ALPHA_DSN}
        references: ["people.id -> things.person_id"]
        collections:
          - name: people
            identities: {email: email}
            fields: {id: none, email: identifiers, ssn: {category: identifiers, never_disclose: true}}
          - name: things
            fields: {id: none, person_id: none, what: commercial_information}
      - name: beta
        owner: beta@example.com
        kind: django
        collections:
          - name: rows
            model: shop.Row
            identities: {email: email}
            fields: {id: none, email: identifiers}
    """
)

# What each fake system does, by system name: "ok", "fail" (retryable), "ambiguous", "broken".
BEHAVIOUR: dict[str, list[str]] = {}
CALLS: list[tuple[str, str]] = []


class FakeConnector(Connector):
    kind = "fake"

    def _next(self) -> str:
        plan = BEHAVIOUR.get(self.system.name, ["ok"])
        return plan.pop(0) if len(plan) > 1 else plan[0]

    def find(self, subject):
        return Found({c.name: [] for c in self.system.collections})

    def export(self, subject, sink):
        CALLS.append((self.system.name, subject.identities["email"]))
        step = self._next()
        if step == "fail":
            raise ConnectorError(f"{self.system.name} refused the connection")
        if step == "ambiguous":
            raise AmbiguousIdentity(f"email matches 2 records in {self.system.name}.people")
        if step == "broken":
            raise KeyError("bug")
        for collection in self.system.collections:
            sink.write(collection.name, {"id": 1, "email": subject.identities["email"], "ssn": "123-45-6789"})
        return Exported(counts={c.name: 1 for c in self.system.collections})

    def health(self):
        return Health(ok=self.system.name != "beta", detail="" if self.system.name != "beta" else "refused")


@pytest.fixture
def fake_systems(settings, tmp_path, monkeypatch):
    path = tmp_path / "datamap.yaml"
    path.write_text(MAP)
    settings.DSR_DATAMAP = str(path)
    monkeypatch.setitem(connectors.CONNECTORS, "sql", FakeConnector)
    monkeypatch.setitem(connectors.CONNECTORS, "django", FakeConnector)
    BEHAVIOUR.clear()
    CALLS.clear()
    queued = {"system": [], "package": []}
    # The tasks run when the test says (eager Celery would run them inside the start's transaction).
    monkeypatch.setitem(runs._queue, "system", lambda pk, countdown=0: queued["system"].append((pk, countdown)))
    monkeypatch.setitem(runs._queue, "package", lambda pk, countdown=0: queued["package"].append(pk))
    return {"path": path, "queued": queued}


def _run_queued(queued, django_capture_on_commit_callbacks):
    """Run every queued system task (and those they queue), like a worker would."""
    while queued["system"]:
        pk, _ = queued["system"].pop(0)
        with django_capture_on_commit_callbacks(execute=True):
            runs.system_run_execute(system_run_id=pk)


def _events(request, kind):
    return [e for e in request.events.all() if e.event_type == kind]


def test_a_search_records_the_map_version_and_searches_every_system(
    officer, fake_systems, django_capture_on_commit_callbacks
):
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    assert run.datamap_version == hashlib.sha256(fake_systems["path"].read_bytes()).hexdigest()
    assert [s.status for s in run.systems.order_by("id")] == [SystemStatus.PENDING, SystemStatus.PENDING]
    assert len(fake_systems["queued"]["system"]) == 2
    _run_queued(fake_systems["queued"], django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE and run.finished_at
    alpha, beta = run.systems.order_by("id")
    assert (alpha.status, alpha.records, alpha.counts) == (SystemStatus.DONE, 2, {"people": 1, "things": 1})
    assert beta.status == SystemStatus.DONE and beta.records == 1
    # What was found is stored encrypted, with the never-disclosed field held back.
    stored = list(result_records(alpha.result_name))
    assert stored[0] == ("people", {"id": 1, "email": "bench1@example.com", "ssn": "held, not shown"})
    assert alpha.withheld[0]["field"] == "ssn"
    assert fake_systems["queued"]["package"] == [run.pk]
    req.refresh_from_db()
    started = _events(req, EventType.FULFILMENT_STARTED)[0]
    assert started.data["datamap_version"] == run.datamap_version and started.data["systems"] == ["alpha", "beta"]
    assert len(_events(req, EventType.FULFILMENT_SYSTEM_DONE)) == 2
    assert _events(req, EventType.FULFILMENT_FINISHED)[0].data["state"] == "done"
    call_command("dsr_verify_audit")  # the chain still verifies with the new kinds


def test_a_redelivered_task_does_no_work_twice(officer, fake_systems, django_capture_on_commit_callbacks):
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    pk = run.systems.get(system="alpha").pk
    with django_capture_on_commit_callbacks(execute=True):
        runs.system_run_execute(system_run_id=pk)
        runs.system_run_execute(system_run_id=pk)
    assert CALLS.count(("alpha", "bench1@example.com")) == 1
    assert len(_events(req, EventType.FULFILMENT_SYSTEM_DONE)) == 1


def test_a_failing_system_is_retried_with_backoff_then_shown_failed_and_the_others_finish(
    officer, fake_systems, django_capture_on_commit_callbacks, settings
):
    settings.DSR_FULFILMENT_RETRIES = 2
    settings.DSR_FULFILMENT_RETRY_SECONDS = 30
    BEHAVIOUR["alpha"] = ["fail"]
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    countdowns = []
    queued = fake_systems["queued"]["system"]
    while queued:
        pk, countdown = queued.pop(0)
        countdowns.append(countdown)
        with django_capture_on_commit_callbacks(execute=True):
            runs.system_run_execute(system_run_id=pk)
    alpha = run.systems.get(system="alpha")
    assert (alpha.status, alpha.attempts) == (SystemStatus.FAILED, 3)
    assert alpha.error == "alpha refused the connection"
    assert run.systems.get(system="beta").status == SystemStatus.DONE
    assert sorted(countdowns) == [0, 0, 30, 60]  # two starts, then 30 s and 60 s backoff
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert fake_systems["queued"]["package"] == []  # no package while a system failed
    failures = _events(req, EventType.FULFILMENT_SYSTEM_FAILED)
    assert [e.data["final"] for e in failures] == [False, False, True]

    # The officer retries it: only alpha runs again; beta keeps its result.
    BEHAVIOUR["alpha"] = ["ok"]
    CALLS.clear()
    with django_capture_on_commit_callbacks(execute=True):
        runs.system_run_retry(request=req, system="alpha", actor=Actor.staff(officer))
    _run_queued(fake_systems["queued"], django_capture_on_commit_callbacks)
    assert CALLS == [("alpha", "bench1@example.com")]
    run.refresh_from_db()
    assert run.state == RunState.DONE and fake_systems["queued"]["package"] == [run.pk]


def test_a_systems_own_retries_in_the_map_override_the_setting(
    officer, fake_systems, django_capture_on_commit_callbacks, settings
):
    settings.DSR_FULFILMENT_RETRIES = 3
    own = MAP.replace("connection: {dsn_env: ALPHA_DSN}", "connection: {dsn_env: ALPHA_DSN, retries: 1}")
    fake_systems["path"].write_text(own)
    BEHAVIOUR["alpha"] = ["fail"]
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    _run_queued(fake_systems["queued"], django_capture_on_commit_callbacks)
    alpha = run.systems.get(system="alpha")
    assert (alpha.status, alpha.attempts) == (SystemStatus.FAILED, 2)  # the first try and one retry


@pytest.mark.parametrize(
    "behaviour, message",
    [
        ("ambiguous", "email matches 2 records in alpha.people"),
        ("broken", "unexpected error: KeyError"),
    ],
)
def test_ambiguity_stops_at_once_and_a_connector_bug_fails_only_its_system(
    officer, fake_systems, django_capture_on_commit_callbacks, settings, behaviour, message
):
    settings.DSR_FULFILMENT_RETRIES = 0
    BEHAVIOUR["alpha"] = [behaviour]
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    _run_queued(fake_systems["queued"], django_capture_on_commit_callbacks)
    alpha = run.systems.get(system="alpha")
    assert alpha.status == SystemStatus.FAILED and message in alpha.error
    assert alpha.attempts == 1 and alpha.result_name == ""
    assert run.systems.get(system="beta").status == SystemStatus.DONE


def test_a_map_changed_since_the_start_fails_the_system_with_the_reason(
    officer, fake_systems, django_capture_on_commit_callbacks
):
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    fake_systems["path"].write_text(MAP.replace("alpha@example.com", "alpha-team@example.com"))
    _run_queued(fake_systems["queued"], django_capture_on_commit_callbacks)
    alpha = run.systems.get(system="alpha")
    assert alpha.status == SystemStatus.FAILED and "the data map changed since this search started" in alpha.error
    assert CALLS == []


def test_a_search_is_refused_unless_verified_open_of_a_searchable_type_and_not_running(officer, fake_systems):
    actor = Actor.staff(officer)
    unverified = request_create(request_type="access_specific")
    with pytest.raises(TransitionNotAllowed, match="only once the request is verified"):
        runs.fulfilment_start(request=unverified, actor=actor)
    objection = verified_request(officer=officer, request_type="objection", email="e@example.com")
    with pytest.raises(TransitionNotAllowed, match="only requests to know, portability, erasure and correction"):
        runs.fulfilment_start(request=objection, actor=actor)
    req = verified_request(officer=officer, email="r@example.com")
    runs.fulfilment_start(request=req, actor=actor)
    with pytest.raises(TransitionNotAllowed, match="already running"):
        runs.fulfilment_start(request=req, actor=actor)
    closed = verified_request(officer=officer, email="c@example.com")
    request_cancel(request=closed, actor=actor, reason="asked to")
    with pytest.raises(TransitionNotAllowed, match="cancelled"):
        runs.fulfilment_start(request=closed, actor=actor)
    assert FulfilmentRun.objects.count() == 1
    assert not _events(unverified, EventType.FULFILMENT_STARTED)


def test_approval_starts_the_search_when_the_setting_says_so(
    officer, fake_systems, settings, django_capture_on_commit_callbacks
):
    actor = Actor.staff(officer)
    settings.DSR_FULFILMENT_AUTO_START = True
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(request=req, actor=actor)
    assert FulfilmentRun.objects.filter(request=req).count() == 1
    settings.DSR_FULFILMENT_AUTO_START = False
    other = verified_request(officer=officer, email="other@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(request=other, actor=actor)
    assert not FulfilmentRun.objects.filter(request=other).exists()


def test_the_lookback_follows_the_regime_and_the_period_the_form_recorded(officer):
    from datetime import UTC, datetime

    received = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)
    ccpa = request_create(request_type="access_specific", regime="ccpa", received_at=received)
    since = runs.lookback_since(ccpa)
    assert since.date().isoformat() in ("2025-03-31", "2025-03-30") and since < received
    assert (received - since).days in (365, 366)
    ccpa.access_period = "since_2022"
    assert runs.lookback_since(ccpa).astimezone(UTC).year in (2021, 2022)
    assert runs.lookback_since(ccpa) <= datetime(2022, 1, 1, 12, tzinfo=UTC)
    gdpr = request_create(request_type="access_specific", regime="gdpr", received_at=received, email="g@example.com")
    assert runs.lookback_since(gdpr) is None


# --- The staff API ---------------------------------------------------------------------------------


def test_the_api_starts_a_search_and_reports_each_system(
    officer, staff_api, fake_systems, django_capture_on_commit_callbacks
):
    req = verified_request(officer=officer)
    url = f"/api/v1/staff/requests/{req.reference}/fulfilment/"
    assert staff_api.get(url).json()["state"] == "not_started"
    with django_capture_on_commit_callbacks(execute=True):
        started = staff_api.post(url + "start/", {}, format="json")
    assert started.status_code == 202, started.content
    body = started.json()
    assert body["state"] == "running" and len(body["datamap_version"]) == 64
    assert [(s["system"], s["kind"], s["status"]) for s in body["systems"]] == [
        ("alpha", "sql", "pending"),
        ("beta", "django", "pending"),
    ]
    _run_queued(fake_systems["queued"], django_capture_on_commit_callbacks)
    body = staff_api.get(url).json()
    assert body["state"] == "done" and body["package"] is None
    alpha = body["systems"][0]
    assert set(alpha) >= {"system", "kind", "status", "records", "error", "started_at", "finished_at"}
    assert (alpha["status"], alpha["records"], alpha["error"]) == ("done", 2, "")
    # A second start while… (done now: allowed) — but not on a closed request: 409, as a problem.
    request_cancel(request=req, actor=Actor.staff(officer), reason="withdrawn")
    refused = staff_api.post(url + "start/", {}, format="json")
    assert refused.status_code == 409 and refused["Content-Type"] == "application/problem+json"
    assert "cancelled" in refused.json()["detail"]


def test_the_api_refuses_reviewers_and_strangers(officer, fake_systems):
    req = verified_request(officer=officer)
    reviewer = officer_create(username="rita", email="rita@company.example", role="reviewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(reviewer)}")
    url = f"/api/v1/staff/requests/{req.reference}/fulfilment/"
    # The staff API is the privacy officers' (IsPrivacyStaff), as for every other request route.
    assert client.get(url).status_code == 403
    assert client.post(url + "start/", {}, format="json").status_code == 403
    assert client.get(f"/api/v1/staff/requests/{req.reference}/package/").status_code == 403
    assert APIClient().get(url).status_code in (401, 403)
    assert APIClient().get("/api/v1/staff/systems/").status_code in (401, 403)
    assert not FulfilmentRun.objects.exists()


def test_the_systems_list_is_the_map_with_each_last_health_check(officer, staff_api, fake_systems):
    from dsr.fulfilment.services.health import systems_health_check

    body = staff_api.get("/api/v1/staff/systems/").json()
    assert [(s["name"], s["kind"], s["owner"]) for s in body] == [
        ("alpha", "sql", "alpha@example.com"),
        ("beta", "django", "beta@example.com"),
    ]
    assert body[0]["categories"] == ["commercial_information", "identifiers"]
    assert [c["name"] for c in body[0]["collections"]] == ["people", "things"]
    assert body[0]["health"] is None
    systems_health_check()
    assert SystemHealth.objects.get(system="beta").ok is False
    body = staff_api.get("/api/v1/staff/systems/").json()
    assert body[0]["health"]["ok"] is True and body[1]["health"] == {
        **body[1]["health"],
        "ok": False,
        "detail": "refused",
    }


def test_a_broken_map_is_a_specific_problem_not_a_crash(officer, staff_api, fake_systems):
    fake_systems["path"].write_text("systems:\n  - name: Bad Name\n")
    body = staff_api.get("/api/v1/staff/systems/")
    assert body.status_code == 409 and "system #1" in body.json()["detail"]
    req = verified_request(officer=officer)
    refused = staff_api.post(f"/api/v1/staff/requests/{req.reference}/fulfilment/start/", {}, format="json")
    assert refused.status_code == 409 and "does not validate" in refused.json()["detail"]
    assert not SystemRun.objects.exists()

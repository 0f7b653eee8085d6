"""The http connector against a real HTTP server on the loopback interface: the request is signed
(checked on the server's side with its own HMAC), carries the identities and never the name; an
inline answer is kept through the record policy; a 202 leaves the system "requested" until its
callback; a 500 is retried with backoff; a timeout, a trickling answer, a refused connection, a
4xx and an answer naming a collection the map does not list each fail the system visibly."""

import time
from urllib.parse import urlsplit

import pytest

from dsr.event_types import EventType
from dsr.fulfilment.connectors import ConnectorError, ConnectorMisconfigured, Subject, connector_for
from dsr.fulfilment.datamap import datamap_load, datamap_parse
from dsr.fulfilment.models import RunState, SystemStatus
from dsr.fulfilment.results import result_records
from dsr.fulfilment.services import health, runs
from dsr.services.audit import Actor
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.support_http import (  # noqa: F401  (fixtures)
    SECRET_ENV,
    Processor,
    Reply,
    callback_post,
    http_map,
    http_system,
    processor,
    queued,
    run_queued,
)

RECORDS = {
    "records": {
        "payment_methods": [
            {"id": "pm_1", "email": "bench1@example.com", "card_brand": "Visa", "card_number": "4000 0000 0000 1234"}
        ],
        "charges": [
            {
                "id": "ch_1",
                "email": "bench1@example.com",
                "amount_cents": 1299,
                "charged_at": "2026-11-01T10:00:00+00:00",
            },
            {
                "id": "ch_2",
                "email": "bench1@example.com",
                "amount_cents": 500,
                "charged_at": "2026-10-01T10:00:00+00:00",
            },
        ],
    }
}


def _start(officer, capture, **kwargs):
    req = verified_request(officer=officer, full_name="Nora Namesake", **kwargs)
    with capture(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    return req, run


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


def test_an_inline_answer_is_signed_kept_and_redacted(
    officer, http_system, processor, queued, django_capture_on_commit_callbacks
):
    processor.plan = [Reply(200, RECORDS)]
    req, run = _start(officer, django_capture_on_commit_callbacks)
    run_queued(queued, django_capture_on_commit_callbacks)

    [call] = processor.calls
    assert call.signature_ok, "the server could not verify the product's signature"
    assert call.path == "/dsr/requests"
    payload = call.payload
    assert payload["mode"] == "export" and payload["system"] == "payments"
    assert payload["reference"] == req.reference
    assert payload["identities"] == {"email": "bench1@example.com"}
    assert payload["due_date"] == req.respond_by.isoformat()
    assert payload["request_type"] == "access_specific"
    assert payload["callback_url"] == f"http://testserver/fulfilment/callback/{run.systems.get().pk}/"
    assert payload["callback_token"] and payload["task_key"].startswith(req.reference)
    assert payload["collections"]["charges"] == ["id", "email", "amount_cents", "charged_at"]
    assert "Nora" not in call.body.decode() and "Namesake" not in call.body.decode()
    assert call.headers["Idempotency-Key"] == payload["task_key"]

    system = run.systems.get()
    assert (system.status, system.records, system.counts) == (
        SystemStatus.DONE,
        3,
        {"payment_methods": 1, "charges": 2},
    )
    stored = dict((c, r) for c, r in result_records(system.result_name) if c == "payment_methods")
    assert stored["payment_methods"]["card_number"] == "held, not shown"  # §7024(d)
    run.refresh_from_db()
    assert run.state == RunState.DONE and queued["package"] == [run.pk]


def test_nothing_held_inline_is_done_with_no_records(
    officer, http_system, processor, queued, django_capture_on_commit_callbacks
):
    processor.plan = [Reply(200, {"nothing_held": True})]
    req, run = _start(officer, django_capture_on_commit_callbacks)
    run_queued(queued, django_capture_on_commit_callbacks)
    system = run.systems.get()
    assert (system.status, system.records) == (SystemStatus.DONE, 0)
    assert _events(req, EventType.FULFILMENT_SYSTEM_DONE)[0].data["records"] == 0


def test_a_202_is_requested_then_the_signed_callback_answers(
    officer, http_system, processor, queued, client, django_capture_on_commit_callbacks
):
    processor.plan = [Reply(202, {"status": "accepted"})]
    req, run = _start(officer, django_capture_on_commit_callbacks)
    run_queued(queued, django_capture_on_commit_callbacks)
    system = run.systems.get()
    assert system.status == SystemStatus.RUNNING and system.requested_at and not system.result_name
    [requested] = _events(req, EventType.FULFILMENT_SYSTEM_REQUESTED)
    assert requested.data["note"].startswith("requested from payments on ")
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and queued["package"] == []

    token = processor.calls[0].payload["callback_token"]
    with django_capture_on_commit_callbacks(execute=True):
        response = callback_post(client, system.pk, RECORDS, token=token)
    assert response.status_code == 200, response.content
    assert response.json() == {"system": "payments", "status": "done", "records": 3}
    system.refresh_from_db()
    run.refresh_from_db()
    assert (system.status, system.records) == (SystemStatus.DONE, 3)
    assert run.state == RunState.DONE and queued["package"] == [run.pk]


def test_a_500_is_retried_with_backoff_then_succeeds(
    officer, http_system, processor, queued, settings, django_capture_on_commit_callbacks
):
    settings.DSR_FULFILMENT_RETRY_SECONDS = 30
    processor.plan = [Reply(500, {"detail": "database restarting"}), Reply(200, RECORDS)]
    req, run = _start(officer, django_capture_on_commit_callbacks)
    countdowns = []
    while queued["system"]:
        pk, countdown = queued["system"].pop(0)
        countdowns.append(countdown)
        with django_capture_on_commit_callbacks(execute=True):
            runs.system_run_execute(system_run_id=pk)
    assert countdowns == [0, 30]
    system = run.systems.get()
    assert (system.status, system.attempts, system.records) == (SystemStatus.DONE, 2, 3)
    [failed] = _events(req, EventType.FULFILMENT_SYSTEM_FAILED)
    assert failed.data["final"] is False
    assert failed.data["reason"] == "payments answered HTTP 500: database restarting"
    assert len(processor.calls) == 2
    assert processor.calls[0].headers["X-DSR-Nonce"] != processor.calls[1].headers["X-DSR-Nonce"]


def test_a_timeout_is_a_visible_failure_not_a_hang(
    officer, settings, tmp_path, monkeypatch, processor, queued, django_capture_on_commit_callbacks
):
    settings.DSR_FULFILMENT_RETRIES = 1
    path = tmp_path / "datamap.yaml"
    path.write_text(http_map(processor.url, timeout=0.5))
    settings.DSR_DATAMAP = str(path)
    monkeypatch.setenv(SECRET_ENV, "processor-secret-for-tests")
    processor.plan = [Reply(200, RECORDS, delay=30)]
    req, run = _start(officer, django_capture_on_commit_callbacks)
    started = time.monotonic()
    run_queued(queued, django_capture_on_commit_callbacks)
    elapsed = time.monotonic() - started
    system = run.systems.get()
    assert (system.status, system.attempts) == (SystemStatus.FAILED, 2)  # retried once, then shown
    assert system.error == "payments (127.0.0.1) did not answer within 0.5 s (timeout_seconds)"
    assert elapsed < 10, f"two 0.5 s timeouts took {elapsed:.1f} s"
    run.refresh_from_db()
    assert run.state == RunState.FAILED and queued["package"] == []


def test_an_answer_that_trickles_in_still_stops_at_the_timeout(settings, processor, monkeypatch):
    """The timeout bounds the whole call, not each read: a byte every 0.2 s is not an answer."""
    monkeypatch.setenv(SECRET_ENV, "processor-secret-for-tests")
    system = datamap_parse(http_map(processor.url, timeout=1).encode()).systems[0]
    processor.plan = [Reply(200, RECORDS, trickle=0.2)]
    started = time.monotonic()
    with pytest.raises(ConnectorError, match=r"did not answer within 1 s") as raised:
        connector_for(system).export(Subject(reference="DSR-1", identities={"email": "a@example.com"}), sink=None)
    assert raised.value.retry is True
    assert time.monotonic() - started < 5


def test_a_refused_connection_may_pass_and_is_retried(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "x")
    closed = Processor()
    url = closed.url
    closed.server.server_close()  # bound, then closed: nothing listens on the port
    system = datamap_parse(http_map(url).encode()).systems[0]
    with pytest.raises(ConnectorError, match="refused the connection") as raised:
        connector_for(system).export(Subject(reference="DSR-1", identities={"email": "a@example.com"}), sink=None)
    assert raised.value.retry is True


@pytest.mark.parametrize("reply, message", [
    (Reply(400, {"detail": "identities.email is required"}), "payments answered HTTP 400: identities.email is required"),
    (Reply(404, None), "payments answered HTTP 404"),
    (Reply(302, None), "payments answered HTTP 302 (redirects are not followed: set the url to where it points)"),
    (Reply(200, {"records": {"invoices": [{"id": 1}]}}),
     "payments's answer was refused: 'invoices' is not a collection of payments in the data map "
     "(one of: charges, payment_methods)"),
    (Reply(200, {"records": {"charges": {"id": 1}}}), "payments's answer was refused: records.charges must be a list"),
    (Reply(200, ["not", "an", "object"]), "payments's answer was refused: the body must be a JSON object"),
])  # fmt: skip
def test_answers_that_retrying_cannot_fix_fail_at_once_with_the_reason(
    officer, http_system, processor, queued, settings, django_capture_on_commit_callbacks, reply, message
):
    settings.DSR_FULFILMENT_RETRIES = 3
    processor.plan = [reply]
    req, run = _start(officer, django_capture_on_commit_callbacks)
    run_queued(queued, django_capture_on_commit_callbacks)
    system = run.systems.get()
    assert (system.status, system.attempts) == (SystemStatus.FAILED, 1)
    assert system.error.startswith(message)
    assert not system.result_name and len(processor.calls) == 1
    assert _events(req, EventType.FULFILMENT_SYSTEM_DONE) == []


def test_a_missing_secret_or_address_names_the_environment_variable(settings, tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    system = datamap_parse(http_map("http://127.0.0.1:9/x").encode()).systems[0]
    with pytest.raises(ConnectorMisconfigured, match=f"environment variable {SECRET_ENV}"):
        connector_for(system).export(Subject(reference="DSR-1", identities={}), sink=None)
    by_env = datamap_parse(
        http_map("http://127.0.0.1:9/x").replace('url: "http://127.0.0.1:9/x"', "url_env: TEST_PROCESSOR_URL").encode()
    ).systems[0]
    monkeypatch.setenv(SECRET_ENV, "x")
    monkeypatch.delenv("TEST_PROCESSOR_URL", raising=False)
    with pytest.raises(ConnectorMisconfigured, match="environment variable TEST_PROCESSOR_URL"):
        connector_for(by_env).export(Subject(reference="DSR-1", identities={}), sink=None)


def test_personal_data_goes_over_plain_http_only_to_loopback(settings, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "x")
    system = datamap_parse(http_map("http://processor.example/dsr").encode()).systems[0]
    with pytest.raises(ConnectorMisconfigured, match="plain http to processor.example"):
        connector_for(system).url()
    settings.DSR_HTTP_ALLOW_PLAIN = True
    assert connector_for(system).url().hostname == "processor.example"


def test_find_asks_with_mode_find_and_returns_the_keys(http_system, processor):
    processor.plan = [Reply(200, RECORDS)]
    connector = connector_for(datamap_load().systems[0])
    found = connector.find(Subject(reference="DSR-1", identities={"email": "bench1@example.com"}))
    assert processor.calls[0].payload["mode"] == "find" and processor.calls[0].signature_ok
    assert found.keys == {"payment_methods": ["pm_1"], "charges": ["ch_1", "ch_2"]}


def test_health_is_a_signed_ping_with_its_latency(db, http_system, processor):
    processor.plan = [Reply(200, {"ok": True}), Reply(503, {"detail": "maintenance"})]
    ok = health.systems_health_check()["payments"]
    assert ok.ok and ok.latency_ms is not None and ok.latency_ms >= 0
    assert processor.calls[0].payload == {"mode": "health", "system": "payments"} and processor.calls[0].signature_ok
    failing = health.systems_health_check()["payments"]
    assert not failing.ok and failing.detail == "payments answered HTTP 503: maintenance"


def test_a_processor_with_another_secret_refuses_the_request(
    officer, http_system, processor, queued, settings, django_capture_on_commit_callbacks
):
    """The server's check is real: signed under another secret, the request is refused."""
    settings.DSR_FULFILMENT_RETRIES = 0
    processor.secret = "the processor knows another secret"
    req, run = _start(officer, django_capture_on_commit_callbacks)
    run_queued(queued, django_capture_on_commit_callbacks)
    assert not processor.calls[0].signature_ok
    assert run.systems.get().error == "payments answered HTTP 401: bad signature"


def test_the_callback_url_uses_the_site_url(
    settings, officer, http_system, processor, queued, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://privacy.example.com"
    processor.plan = [Reply(202, {})]
    req, run = _start(officer, django_capture_on_commit_callbacks)
    run_queued(queued, django_capture_on_commit_callbacks)
    url = processor.calls[0].payload["callback_url"]
    assert urlsplit(url)._replace(path="").geturl() == "https://privacy.example.com"
    assert url.endswith(f"/fulfilment/callback/{run.systems.get().pk}/")

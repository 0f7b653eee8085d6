"""The signature (both directions) and an http system's callback: accepted once with the right
bearer token and signature, refused with 401 for a wrong token, 403 for a bad or stale signature,
409 for a replayed nonce or a system that has already answered, 400 naming the bad field; an
error the system reports fails it visibly; bodies are limited, and so is the rate per client.
Every refusal is problem+json and changes nothing."""

import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from dsr.event_types import EventType
from dsr.fulfilment import signing
from dsr.fulfilment.models import RunState, SignatureNonce, SystemStatus
from dsr.fulfilment.results import result_records
from dsr.fulfilment.services import runs, sweep
from dsr.services.audit import Actor
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.support_http import (  # noqa: F401  (fixtures)
    Reply,
    callback_post,
    hmac_hex,
    http_system,
    processor,
    queued,
    run_queued,
    signed_headers,
)

pytestmark = pytest.mark.django_db

RECORDS = {"records": {"charges": [{"id": "ch_1", "email": "bench1@example.com", "amount_cents": 1299,
                                    "charged_at": "2026-11-01T10:00:00+00:00"}]}}  # fmt: skip


# --- The signature ------------------------------------------------------------------------------------


def _signed(body=b'{"a":1}', path="/x/", secret="s3cret", **kwargs):
    return signing.signature_headers(secret=secret, method="POST", path=path, body=body, **kwargs)


def test_a_signature_verifies_once_and_its_nonce_is_then_a_replay():
    headers = _signed()
    expected = hmac_hex("s3cret", headers["X-DSR-Timestamp"], headers["X-DSR-Nonce"], "POST", "/x/", b'{"a":1}')
    assert headers["X-DSR-Signature"] == f"v1={expected}"  # the documented message, independently computed
    nonce = signing.signature_verify(secret="s3cret", scope="payments", method="POST", path="/x/", body=b'{"a":1}',
                                     headers=headers)  # fmt: skip
    assert SignatureNonce.objects.filter(scope="payments", nonce=nonce).exists()
    with pytest.raises(signing.SignatureReplayed, match="used before"):
        signing.signature_verify(secret="s3cret", scope="payments", method="POST", path="/x/", body=b'{"a":1}',
                                 headers=headers)  # fmt: skip


@pytest.mark.parametrize("change, message", [
    ({"body": b'{"a":2}'}, "does not match"),
    ({"path": "/y/"}, "does not match"),
    ({"method": "PUT"}, "does not match"),
    ({"secret": "another"}, "does not match"),
])  # fmt: skip
def test_any_change_to_the_message_breaks_the_signature_and_uses_up_no_nonce(change, message):
    headers = _signed()
    given = {"secret": "s3cret", "method": "POST", "path": "/x/", "body": b'{"a":1}', **change}
    with pytest.raises(signing.SignatureInvalid, match=message) as raised:
        signing.signature_verify(scope="payments", headers=headers, **given)
    assert raised.value.status_code == 403
    assert not SignatureNonce.objects.exists()  # forged messages cannot use up a sender's nonces


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_outside_the_window_either_way_is_refused(offset, settings):
    settings.DSR_HTTP_SIGNATURE_MAX_AGE = 300
    headers = _signed(now=time.time() + offset)
    with pytest.raises(signing.SignatureInvalid, match="more than 300 seconds"):
        signing.signature_verify(
            secret="s3cret", scope="p", method="POST", path="/x/", body=b'{"a":1}', headers=headers
        )
    assert not SignatureNonce.objects.exists()


@pytest.mark.parametrize("header, value, message", [
    ("X-DSR-Signature", None, "X-DSR-Signature header is missing"),
    ("X-DSR-Signature", "sha256=abc", "must be 'v1='"),
    ("X-DSR-Nonce", "short", "16 to 64"),
    ("X-DSR-Timestamp", "yesterday", "Unix time"),
])  # fmt: skip
def test_malformed_headers_are_refused_by_name(header, value, message):
    headers = _signed()
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(signing.SignatureInvalid, match=message):
        signing.signature_verify(
            secret="s3cret", scope="p", method="POST", path="/x/", body=b'{"a":1}', headers=headers
        )


def test_the_sweep_forgets_nonces_only_once_they_would_be_refused_anyway(settings):
    settings.DSR_HTTP_SIGNATURE_MAX_AGE = 300
    headers = _signed()
    signing.signature_verify(secret="s3cret", scope="p", method="POST", path="/x/", body=b'{"a":1}', headers=headers)
    assert sweep.fulfilment_sweep()["signature_nonces_purged"] == 0
    with time_machine.travel(timezone.now() + timedelta(seconds=301), tick=False):
        assert sweep.fulfilment_sweep()["signature_nonces_purged"] == 1
        # ...and the message, replayed now, is refused as stale, not accepted as new.
        with pytest.raises(signing.SignatureInvalid, match="more than 300 seconds"):
            signing.signature_verify(secret="s3cret", scope="p", method="POST", path="/x/", body=b'{"a":1}',
                                     headers=headers)  # fmt: skip


# --- The callback ---------------------------------------------------------------------------------------


@pytest.fixture
def waiting(officer, http_system, processor, queued, django_capture_on_commit_callbacks):
    """A search whose http system answered 202: it waits for its callback."""
    processor.plan = [Reply(202, {})]
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, django_capture_on_commit_callbacks)
    system_run = run.systems.get()
    assert system_run.status == SystemStatus.RUNNING and system_run.requested_at
    return {"req": req, "run": run, "system_run": system_run, "token": processor.calls[0].payload["callback_token"]}


def _unchanged(waiting):
    system_run = waiting["system_run"]
    system_run.refresh_from_db()
    assert system_run.status == SystemStatus.RUNNING and not system_run.result_name
    assert [e for e in waiting["req"].events.all() if e.event_type == EventType.FULFILMENT_SYSTEM_DONE] == []


def _problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].endswith(code) and body["detail"]
    assert "no-store" in response["Cache-Control"]
    return body


def test_a_wrong_or_missing_token_is_401_and_changes_nothing(client, waiting):
    pk = waiting["system_run"].pk
    _problem(callback_post(client, pk, RECORDS, token="not-the-token"), 401, "token_invalid")
    response = client.post(f"/fulfilment/callback/{pk}/", data=b"{}", content_type="application/json")
    assert _problem(response, 401, "token_invalid") and response["WWW-Authenticate"].startswith("Bearer")
    # Another system run's id with this token: the same answer, nothing said about which is wrong.
    assert _problem(callback_post(client, pk + 1000, RECORDS, token=waiting["token"]), 401, "token_invalid")
    _unchanged(waiting)


def test_a_bad_signature_with_the_right_token_is_403(client, waiting):
    pk = waiting["system_run"].pk
    _problem(callback_post(client, pk, RECORDS, token=waiting["token"], secret="not the secret"), 403,
             "signature_invalid")  # fmt: skip
    stale = int(time.time()) - 3600
    body = _problem(callback_post(client, pk, RECORDS, token=waiting["token"], timestamp=stale), 403,
                    "signature_invalid")  # fmt: skip
    assert "check the sender's clock" in body["detail"]
    _unchanged(waiting)


def test_the_right_callback_is_recorded_once_and_a_replay_is_409(client, waiting, django_capture_on_commit_callbacks):
    pk, token = waiting["system_run"].pk, waiting["token"]
    path = f"/fulfilment/callback/{pk}/"
    body = json.dumps(RECORDS).encode()
    headers = signed_headers(body, path, token=token)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(path, data=body, content_type="application/json", headers=headers)
    assert first.status_code == 200 and first.json()["records"] == 1
    # The same message again: a replay, refused before anything else is looked at.
    _problem(client.post(path, data=body, content_type="application/json", headers=headers), 409, "signature_replayed")
    # A fresh message for a system that has answered: refused as such.
    _problem(callback_post(client, pk, RECORDS, token=token), 409, "already_answered")
    waiting["system_run"].refresh_from_db()
    assert waiting["system_run"].status == SystemStatus.DONE and waiting["system_run"].records == 1
    done = [e for e in waiting["req"].events.all() if e.event_type == EventType.FULFILMENT_SYSTEM_DONE]
    assert len(done) == 1


@pytest.mark.parametrize("document, field, detail", [
    (b"not json", "body", "The body is not JSON"),
    ({"records": {"invoices": [{"id": 1}]}}, "records", "'invoices' is not a collection of payments"),
    ({"records": {"charges": [{"id": 1}, "two"]}}, "records", "records.charges[1] must be an object"),
    ({"records": ["charges"]}, "records", "'records' must be an object"),
    ({"error": ""}, "error", "'error' must be a sentence"),
])  # fmt: skip
def test_a_bad_body_is_400_naming_the_field_and_loses_nothing(client, waiting, document, field, detail):
    body = _problem(callback_post(client, waiting["system_run"].pk, document, token=waiting["token"]), 400,
                    "invalid_input")  # fmt: skip
    assert detail in body["detail"] and body["errors"] == {field: [body["detail"]]}
    _unchanged(waiting)
    # The system can still answer properly afterwards.
    assert callback_post(client, waiting["system_run"].pk, RECORDS, token=waiting["token"]).status_code == 200


def test_nothing_held_by_callback_finishes_the_system_with_no_records(
    client, waiting, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = callback_post(client, waiting["system_run"].pk, {"nothing_held": True}, token=waiting["token"])
    assert response.status_code == 200 and response.json() == {"system": "payments", "status": "done", "records": 0}
    waiting["run"].refresh_from_db()
    assert waiting["run"].state == RunState.DONE and queued["package"] == [waiting["run"].pk]


def test_an_error_the_system_reports_fails_it_visibly(client, waiting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = callback_post(client, waiting["system_run"].pk, {"error": "Customer archive offline"},
                                 token=waiting["token"])  # fmt: skip
    assert response.status_code == 200 and response.json()["status"] == "failed"
    system_run = waiting["system_run"]
    system_run.refresh_from_db()
    assert system_run.status == SystemStatus.FAILED
    assert system_run.error == "payments reported an error: Customer archive offline"
    [failed] = [e for e in waiting["req"].events.all() if e.event_type == EventType.FULFILMENT_SYSTEM_FAILED]
    assert failed.data["final"] is True
    waiting["run"].refresh_from_db()
    assert waiting["run"].state == RunState.FAILED


def test_a_body_over_the_limit_is_413(client, waiting, settings):
    settings.DSR_HTTP_MAX_BYTES = 100
    big = {"records": {"charges": [{"id": str(n), "email": "x@example.com"} for n in range(20)]}}
    _problem(callback_post(client, waiting["system_run"].pk, big, token=waiting["token"]), 413, "too_large")
    _unchanged(waiting)


def test_callbacks_are_limited_per_client_address(client, waiting, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "callback_ip": "2/minute"}
    for _ in range(2):
        assert callback_post(client, waiting["system_run"].pk, RECORDS, token="wrong").status_code == 401
    response = callback_post(client, waiting["system_run"].pk, RECORDS, token=waiting["token"])
    _problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0
    # Another client address is not held back by the first one's attempts.
    other = callback_post(client.__class__(REMOTE_ADDR="198.51.100.7"), waiting["system_run"].pk, RECORDS,
                          token=waiting["token"])  # fmt: skip
    assert other.status_code == 200


def test_a_get_is_405_and_a_retry_issues_a_new_token(
    client, waiting, officer, processor, queued, django_capture_on_commit_callbacks
):
    assert client.get(f"/fulfilment/callback/{waiting['system_run'].pk}/").status_code == 405
    # The system fails; the officer retries it: the old token stops working.
    with django_capture_on_commit_callbacks(execute=True):
        callback_post(client, waiting["system_run"].pk, {"error": "try later"}, token=waiting["token"])
    with django_capture_on_commit_callbacks(execute=True):
        runs.system_run_retry(request=waiting["req"], system="payments", actor=Actor.staff(officer))
    run_queued(queued, django_capture_on_commit_callbacks)
    new_token = processor.calls[-1].payload["callback_token"]
    assert new_token != waiting["token"]
    assert callback_post(client, waiting["system_run"].pk, RECORDS, token=waiting["token"]).status_code == 401
    assert callback_post(client, waiting["system_run"].pk, RECORDS, token=new_token).status_code == 200


def test_a_callback_that_arrives_before_its_202_is_read_is_kept(
    officer, client, http_system, processor, queued, monkeypatch, django_capture_on_commit_callbacks
):
    """A fast processor answers on its callback before the product has read its 202: the answer
    counts, and the late 202 does not put the system back to "requested"."""
    from dsr.fulfilment.connectors.http import HttpConnector

    processor.plan = [Reply(202, {})]
    original = HttpConnector.call

    def call_then_callback(self, payload):
        answer = original(self, payload)
        system_run_id = int(payload["callback_url"].rstrip("/").rsplit("/", 1)[1])
        assert callback_post(client, system_run_id, RECORDS, token=payload["callback_token"]).status_code == 200
        return answer

    monkeypatch.setattr(HttpConnector, "call", call_then_callback)
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, django_capture_on_commit_callbacks)
    system_run = run.systems.get()
    assert (system_run.status, system_run.records) == (SystemStatus.DONE, 1)
    assert list(result_records(system_run.result_name))  # the callback's records, not deleted with the 202
    assert [e for e in req.events.all() if e.event_type == EventType.FULFILMENT_SYSTEM_REQUESTED] == []
    run.refresh_from_db()
    assert run.state == RunState.DONE

"""A processor on the loopback interface for the http connector's tests: a real HTTP server in a
thread that checks the product's signature with its own HMAC (the protocol as documented, not
the product's code), records every call and answers from a plan. Also the other direction: a
signed callback, built the way a processor would, and a data map with one http system."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dsr.fulfilment.services import runs

SECRET_ENV = "TEST_PROCESSOR_SECRET"
SECRET = "processor-secret-for-tests"


def hmac_hex(secret: str, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}.{nonce}.{method}.{path}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"nothing_held": True})
    delay: float = 0.0  # seconds before answering
    trickle: float = 0.0  # seconds between the body's bytes


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    payload: Any
    signature_ok: bool


class Processor:
    """`plan` holds the next replies (the last one repeats); `calls` what arrived."""

    def __init__(self, secret: str = SECRET):
        self.secret = secret
        self.calls: list[Call] = []
        self.plan: list[Reply] = [Reply()]
        self.stopping = threading.Event()
        processor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                timestamp = self.headers.get("X-DSR-Timestamp", "")
                nonce = self.headers.get("X-DSR-Nonce", "")
                given = self.headers.get("X-DSR-Signature", "")
                expected = "v1=" + hmac_hex(processor.secret, timestamp, nonce, "POST", self.path, body)
                fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
                ok = hmac.compare_digest(given, expected) and fresh
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                processor.calls.append(Call(self.path, dict(self.headers), body, payload, ok))
                reply = processor.plan.pop(0) if len(processor.plan) > 1 else processor.plan[0]
                if not ok:
                    reply = Reply(401, {"detail": "bad signature"})
                if reply.delay:
                    processor.stopping.wait(reply.delay)
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if reply.trickle:
                    for byte in data:
                        if processor.stopping.wait(reply.trickle):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                else:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/dsr/requests"

    def start(self) -> Processor:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def http_map(url: str, *, timeout: float = 2, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        systems:
          - name: payments
            owner: finance@example.com
            kind: http
            connection: {{url: "{url}", secret_env: {SECRET_ENV}, timeout_seconds: {timeout}}}
            collections:
              - name: payment_methods
                primary_key: id
                identities: {{email: email}}
                fields:
                  id: none
                  email: identifiers
                  card_brand: customer_records
                  card_number: {{category: customer_records, never_disclose: true}}
              - name: charges
                primary_key: id
                identities: {{email: email}}
                dated_by: charged_at
                fields: {{id: none, email: identifiers, amount_cents: commercial_information,
                          charged_at: commercial_information}}
        """
    ) + textwrap.dedent(extra)


def signed_headers(
    body: bytes, path: str, *, secret: str = SECRET, token: str | None = None, nonce: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:  # fmt: skip
    """The headers a processor sends with its callback."""
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(18)
    headers = {
        "X-DSR-Timestamp": timestamp_text,
        "X-DSR-Nonce": nonce,
        "X-DSR-Signature": "v1=" + hmac_hex(secret, timestamp_text, nonce, "POST", path, body),
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def callback_post(client, system_run_id: int, document: Any, *, token: str, **signing):
    """POST a signed callback like a processor would; returns the response."""
    path = f"/fulfilment/callback/{system_run_id}/"
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post(
        path, data=body, content_type="application/json", headers=signed_headers(body, path, token=token, **signing)
    )


@pytest.fixture
def processor():
    server = Processor().start()
    yield server
    server.close()


@pytest.fixture
def queued(monkeypatch):
    """The system and package tasks, kept for the test to run (eager Celery would run them inside
    the start's transaction)."""
    found: dict[str, list] = {"system": [], "package": []}
    monkeypatch.setitem(runs._queue, "system", lambda pk, countdown=0: found["system"].append((pk, countdown)))
    monkeypatch.setitem(runs._queue, "package", lambda pk, countdown=0: found["package"].append(pk))
    return found


@pytest.fixture
def http_system(settings, tmp_path, monkeypatch, processor, queued):
    """The data map with one http system pointing at the loopback processor, its secret set."""
    path = tmp_path / "datamap.yaml"
    path.write_text(http_map(processor.url))
    settings.DSR_DATAMAP = str(path)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return path


def run_queued(queued, capture) -> None:
    """Run every queued system task (and those they queue), like a worker."""
    while queued["system"]:
        pk, _ = queued["system"].pop(0)
        with capture(execute=True):
            runs.system_run_execute(system_run_id=pk)

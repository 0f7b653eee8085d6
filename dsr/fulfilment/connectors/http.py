"""HTTP systems: a processor or SaaS system that holds the person's data and answers a signed POST
(README "HTTP systems"). The map names where (`url`, or `url_env`) and the environment variable
holding the signing secret (`secret_env`); `timeout_seconds` (default 10) bounds each call as a
whole, so a system that does not answer fails visibly instead of holding its task.

    POST <url>   X-DSR-Timestamp, X-DSR-Nonce, X-DSR-Signature: v1=<hmac>   (see dsr.fulfilment.signing)
    {"mode": "export", "reference", "request_type", "identities", "due_date", "callback_url",
     "callback_token", "task_key", "system", "collections": {name: [fields]}}

The system answers inline, `200 {"records": {"<collection>": [{...}, ...]}}` (or
`{"nothing_held": true}`), or later: `202`, then a signed POST of the same body to `callback_url`
with `Authorization: Bearer <callback_token>`. A 5xx, a refused connection or a timeout may pass
(the run retries with backoff); another 4xx will not. `find` sends `"mode": "find"`, `health` a
signed `"mode": "health"` ping. The requester's name is never sent: only the identities searched.

Standard library only (http.client): the timeout covers connecting, sending and reading."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from dsr.deadlines import business_today
from dsr.fulfilment.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorMisconfigured,
    Exported,
    Found,
    Health,
    RecordSink,
    Subject,
    connector_register,
)
from dsr.fulfilment.datamap import System
from dsr.fulfilment.signing import signature_headers

DEFAULT_TIMEOUT_SECONDS = 10
# A 4xx that says "later" rather than "never": the run's retry may help.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 425, 429})
USER_AGENT = "dsr-fulfilment/1"
READ_CHUNK = 64 * 1024


class RecordsInvalid(ValueError):
    """An answer's records are not what the protocol and the data map allow; names the place."""


def records_from_answer(system: System, document: Any) -> list[tuple[str, dict[str, Any]]]:
    """(collection, record) pairs from an answer's body (inline or callback), checked whole
    before any is kept: `records` maps collections the data map lists to lists of objects, or
    `nothing_held` is true. Raises RecordsInvalid naming the first problem."""
    if not isinstance(document, dict):
        raise RecordsInvalid("the body must be a JSON object with 'records' or 'nothing_held'")
    if document.get("nothing_held") is True and not document.get("records"):
        return []
    records = document.get("records")
    if not isinstance(records, dict):
        raise RecordsInvalid("'records' must be an object of collection name -> list of records")
    names = {c.name for c in system.collections}
    pairs: list[tuple[str, dict[str, Any]]] = []
    for collection, items in records.items():
        if collection not in names:
            raise RecordsInvalid(
                f"'{collection}' is not a collection of {system.name} in the data map "
                f"(one of: {', '.join(sorted(names))})"
            )
        if not isinstance(items, list):
            raise RecordsInvalid(f"records.{collection} must be a list of records")
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise RecordsInvalid(f"records.{collection}[{index}] must be an object")
            pairs.append((collection, item))
    return pairs


@dataclass
class Answer:
    status: int
    document: Any  # the parsed JSON body, or None
    text: str  # the body's start, for error messages
    latency_ms: float


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@connector_register
class HttpConnector(Connector):
    kind = "http"

    # --- configuration (read at each call: the environment names the secrets) ----------------

    def _env(self, key: str, what: str) -> str:
        name = self.system.connection.get(key, "")
        value = os.environ.get(name, "") if name else ""
        if not value:
            raise ConnectorMisconfigured(f"the environment variable {name} ({what} of {self.system.name}) is not set")
        return value

    def url(self) -> SplitResult:
        raw = self.system.connection.get("url") or self._env("url_env", "the address")
        parts = urlsplit(str(raw))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectorMisconfigured(f"{self.system.name}'s url must be an http(s) address, not {raw!r}")
        if parts.scheme == "http" and not (_loopback(parts.hostname) or settings.DSR_HTTP_ALLOW_PLAIN):
            raise ConnectorMisconfigured(
                f"{self.system.name}'s url is plain http to {parts.hostname}: personal data goes over https "
                "(DSR_HTTP_ALLOW_PLAIN=true allows http, e.g. inside a private network)"
            )
        return parts

    def secret(self) -> str:
        return self._env("secret_env", "the signing secret")

    def timeout(self) -> float:
        return float(self.system.connection.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)

    # --- one signed call --------------------------------------------------------------------------

    def payload(self, mode: str, subject: Subject | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": mode, "system": self.system.name}
        if subject is not None:
            body.update(
                {
                    "reference": subject.reference,
                    "request_type": subject.request_type,
                    "identities": subject.identities,
                    "due_date": subject.due_date.isoformat() if subject.due_date else None,
                    "callback_url": subject.callback_url or None,
                    "callback_token": subject.callback_token or None,
                    "task_key": subject.task_key,
                    "collections": {c.name: list(c.field_names) for c in self.system.collections},
                }
            )
        return body

    def call(self, payload: dict[str, Any]) -> Answer:
        """POST the signed payload and read the answer, all within the timeout. Raises
        ConnectorError(retry=True) when the system cannot be reached or does not answer in time."""
        extra = {"Idempotency-Key": payload["task_key"]} if payload.get("task_key") else {}
        return signed_post(
            self.url(), secret=self.secret(), payload=payload, timeout=self.timeout(), name=self.system.name,
            headers=extra,
        )  # fmt: skip

    def _refused(self, answer: Answer) -> ConnectorError:
        """The error for an answer that is not 200/202, saying whether a retry may help."""
        detail = ""
        if isinstance(answer.document, dict):
            detail = str(answer.document.get("detail") or answer.document.get("error") or "")[:300]
        detail = detail or answer.text.strip()[:300]
        message = f"{self.system.name} answered HTTP {answer.status}" + (f": {detail}" if detail else "")
        if 300 <= answer.status < 400:
            return _error(f"{message} (redirects are not followed: set the url to where it points)", retry=False)
        if 400 <= answer.status < 500 and answer.status not in RETRYABLE_CLIENT_ERRORS:
            return _error(message, retry=False)
        return _error(message, retry=True)  # 5xx (and 408, 425, 429): the run tries again with backoff

    # --- the interface ---------------------------------------------------------------------------

    def export(self, subject: Subject, sink: RecordSink) -> Exported:
        answer = self.call(self.payload("export", subject))
        if answer.status == 202:
            return Exported(pending=f"requested from {self.system.name} on {business_today().isoformat()}")
        if answer.status != 200:
            raise self._refused(answer)
        try:
            pairs = records_from_answer(self.system, answer.document)
        except RecordsInvalid as invalid:
            raise _error(f"{self.system.name}'s answer was refused: {invalid}", retry=False) from None
        counts = {c.name: 0 for c in self.system.collections}
        for collection, record in pairs:
            sink.write(collection, record)
            counts[collection] += 1
        return Exported(counts=counts)

    def find(self, subject: Subject) -> Found:
        answer = self.call(self.payload("find", subject))
        if answer.status != 200:
            raise self._refused(answer)
        try:
            pairs = records_from_answer(self.system, answer.document)
        except RecordsInvalid as invalid:
            raise _error(f"{self.system.name}'s answer was refused: {invalid}", retry=False) from None
        keys: dict[str, list[Any]] = {c.name: [] for c in self.system.collections}
        for collection, record in pairs:
            keys[collection].append(record.get(self.system.collection(collection).primary_key))
        return Found(keys)

    def health(self) -> Health:
        try:
            answer = self.call(self.payload("health"))
        except ConnectorError as error:
            return Health(ok=False, detail=str(error))
        if answer.status != 200:
            return Health(ok=False, detail=str(self._refused(answer)), latency_ms=answer.latency_ms)
        return Health(ok=True, detail=f"answered in {answer.latency_ms:g} ms", latency_ms=answer.latency_ms)


def signed_post(
    parts: SplitResult,
    *,
    secret: str,
    payload: dict[str, Any],
    timeout: float,
    name: str,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One signed JSON POST (see dsr.fulfilment.signing), read whole within `timeout` seconds
    (connecting, sending and reading together). Raises ConnectorError(retry=True) when the other
    end cannot be reached or does not answer in time, or answers more than DSR_HTTP_MAX_BYTES."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        **(headers or {}),
        **signature_headers(secret=secret, method="POST", path=path, body=body),
    }
    host = parts.hostname or ""
    where = f"{name} ({host})"
    started = time.monotonic()
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    # The timeout bounds the whole call, not each read: at the deadline a watchdog shuts the socket,
    # so an answer that trickles in a byte at a time fails then too.
    watchdog = _Watchdog(timeout)
    limit = settings.DSR_HTTP_MAX_BYTES
    data = bytearray()
    try:
        connection.connect()
        watchdog.watch(connection.sock)
        connection.request("POST", path, body=body, headers=sent)
        response = connection.getresponse()
        while chunk := response.read1(READ_CHUNK):
            data += chunk
            if len(data) > limit:
                raise ConnectorError(f"{where} answered more than {limit} bytes (DSR_HTTP_MAX_BYTES)")
        if watchdog.fired:
            raise TimeoutError
    except (TimeoutError, OSError, http.client.HTTPException) as error:
        if watchdog.fired or isinstance(error, TimeoutError):
            raise ConnectorError(f"{where} did not answer within {timeout:g} s (timeout_seconds)") from None
        if isinstance(error, ConnectionRefusedError):
            raise ConnectorError(f"{where} refused the connection") from None
        if isinstance(error, ssl.SSLError):
            raise ConnectorError(f"{where}: TLS failed ({error.reason or error})") from None
        raise ConnectorError(f"{where} could not be reached: {type(error).__name__}: {error}") from None
    finally:
        watchdog.cancel()
        connection.close()
    text = bytes(data[:300]).decode("utf-8", "replace")
    try:
        document = json.loads(data) if data else None
    except ValueError:
        document = None
    return Answer(response.status, document, text, round((time.monotonic() - started) * 1000, 2))


class _Watchdog:
    """Shuts a socket down once `seconds` have passed since it was made (unless cancelled)."""

    def __init__(self, seconds: float):
        self.fired = False  # set once, by the timer's thread
        self.sock: socket.socket | None = None
        self.timer = threading.Timer(seconds, self._cut)
        self.timer.daemon = True
        self.timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        self.sock = sock
        if self.fired:
            self._cut()

    def _cut(self) -> None:
        self.fired = True
        if self.sock is not None:
            try:
                # The plain socket's shutdown, also under TLS: a blocked read returns at once.
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def cancel(self) -> None:
        self.timer.cancel()


def _error(message: str, *, retry: bool) -> ConnectorError:
    error = ConnectorError(message)
    error.retry = retry
    return error

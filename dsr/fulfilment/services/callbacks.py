"""An http system's answer that comes later: before each call the subject preparer gives the system
a callback URL and a fresh bearer token (only its keyed digest is stored); the system then POSTs
its records there, signed like the product's own requests (or, for an instruction — erase,
restrict, opt out, limit, correct — `{"done": true, "counts": {...}}` or `{"error": "..."}`,
which confirm or refuse it through the instruction channel). `callback_receive` checks the token,
the signature (and its nonce, so a replay is refused), that the system is still waiting, and the
body, then records the answer through the run like any connector's: records, "nothing held", or
an error of the system's own (the system fails visibly)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import replace

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from dsr.errors import DsrError, InvalidInput
from dsr.fulfilment.connectors.base import ConnectorMisconfigured, Subject
from dsr.fulfilment.connectors.http import HttpConnector, RecordsInvalid, records_from_answer
from dsr.fulfilment.connectors.http_instruct import CountsInvalid, counts_from_answer
from dsr.fulfilment.crypto import token_digest
from dsr.fulfilment.datamap import DataMapError, datamap_load
from dsr.fulfilment.models import RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import instructions, manual_tasks, runs
from dsr.fulfilment.signing import SignatureInvalid, signature_verify

# A callback is accepted while its system is still waiting for it (or between retries).
WAITING = frozenset({SystemStatus.PENDING, SystemStatus.RUNNING})
# An instruction's confirmation: also once the channel recorded the 202 (waiting for confirmation).
INSTRUCTION_WAITING = frozenset({SystemStatus.PENDING, SystemStatus.RUNNING, SystemStatus.WAITING})


class CallbackRefused(DsrError):
    """A callback that is not accepted; `status_code` is the HTTP status it is answered with."""

    def __init__(self, message: str, *, status_code: int, code: str, field: str | None = None):
        super().__init__(message, field=field)
        self.status_code = status_code
        self.code = code


def callback_url(system_run_id: int) -> str:
    return settings.SITE_URL + reverse("fulfilment-systems:callback", args=[system_run_id])


def callback_subject_prepare(system_run: SystemRun, subject: Subject) -> Subject:
    """runs' subject preparer for http systems: where to answer later, and with which token. Each
    attempt issues a new token; an earlier attempt's token stops working."""
    token = runs.callback_token_issue(system_run)
    return replace(subject, callback_url=callback_url(system_run.pk), callback_token=token)


def instruction_subject_prepare(subject: Subject) -> Subject:
    """http_instruct's callback preparer: the subject's system run's callback url and a fresh
    token. A subject of no system run (a replay, a test) goes without: it must answer inline."""
    try:
        system_run = manual_tasks.system_run_of(subject)
    except InvalidInput:
        return subject
    return callback_subject_prepare(system_run, subject)


def _unauthorised() -> CallbackRefused:
    # The same answer for an unknown system run, one that was never given a token and a wrong
    # token: nothing tells a guesser which of them it hit.
    return CallbackRefused(
        "The bearer token is missing or is not this callback's.", status_code=401, code="token_invalid"
    )


def callback_receive(
    *, system_run_id: int, token: str, method: str, path: str, body: bytes, headers: Mapping[str, str]
) -> dict:
    """Record one signed callback. Returns what was recorded ({"system", "status", "records"});
    raises CallbackRefused (401 token, 403 signature, 409 replay or no longer waiting, 400 body)."""
    system_run = SystemRun.objects.select_related("run").filter(pk=system_run_id).first()
    if (
        system_run is None
        or not system_run.callback_digest
        or not token
        or not hmac.compare_digest(token_digest(token), system_run.callback_digest)
    ):
        raise _unauthorised()
    try:
        datamap = datamap_load()
    except DataMapError:
        raise CallbackRefused(
            "The data map does not load here at the moment; try again later.", status_code=503, code="unavailable"
        ) from None
    # A recipient told through an http system of the map resolves to that system.
    system = instructions.system_resolve(datamap, system_run.system)
    if system is None or system.kind != "http":
        raise CallbackRefused(
            f"{system_run.system} no longer answers by callback.", status_code=409, code="not_waiting"
        )
    try:
        secret = HttpConnector(system).secret()
    except ConnectorMisconfigured as error:
        raise CallbackRefused(str(error), status_code=503, code="not_configured") from None
    try:
        signature_verify(secret=secret, scope=system.name, method=method, path=path, body=body, headers=headers)
    except SignatureInvalid as error:
        raise CallbackRefused(str(error), status_code=error.status_code, code=error.code) from None
    try:
        document = json.loads(body)
    except ValueError:
        raise CallbackRefused(
            'The body is not JSON: send {"records": {...}}, {"nothing_held": true} or {"error": "..."}.',
            status_code=400,
            code="invalid_input",
            field="body",
        ) from None
    if system_run.instruction:
        return _instruction_callback(system_run, system, document)
    reported = _reported_error(document)
    pairs: list = []
    if reported is None:
        try:
            pairs = records_from_answer(system, document)
        except RecordsInvalid as invalid:
            raise CallbackRefused(str(invalid), status_code=400, code="invalid_input", field="records") from None
    with transaction.atomic():
        locked = _locked_waiting(
            system_run, system, WAITING, answered="has already answered for this request", waiting="an answer"
        )
        if reported is not None:
            runs.system_run_answer_failed(
                system_run_id=locked.pk, error=f"{system.name} reported an error: {reported.strip()[:500]}"
            )
            return {"system": system.name, "status": SystemStatus.FAILED, "records": 0}
        try:
            kept = runs.system_run_records_receive(system_run=locked, records=pairs, datamap=datamap)
        except InvalidInput as invalid:
            raise CallbackRefused(invalid.message, status_code=400, code="invalid_input", field="records") from None
    return {"system": system.name, "status": SystemStatus.DONE, "records": kept}


def _reported_error(document) -> str | None:
    """The system's own error sentence (`{"error": "…"}`), or None when it did not report one."""
    if not (isinstance(document, dict) and "error" in document):
        return None
    reported = document["error"]
    if not isinstance(reported, str) or not reported.strip():
        raise CallbackRefused(
            "'error' must be a sentence saying what went wrong.", status_code=400, code="invalid_input", field="error"
        )
    return reported


def _locked_waiting(system_run: SystemRun, system, statuses: frozenset, *, answered: str, waiting: str) -> SystemRun:
    """The system run, locked, if it still waits for this callback; else a 409 saying why."""
    locked = SystemRun.objects.select_for_update().select_related("run").get(pk=system_run.pk)
    if locked.run.state != RunState.RUNNING or locked.status not in statuses:
        done = locked.status == SystemStatus.DONE
        raise CallbackRefused(
            f"{system.name} {answered}."
            if done
            else f"{system.name} is no longer waiting for {waiting} ({locked.get_status_display().lower()}).",
            status_code=409,
            code="already_answered" if done else "not_waiting",
        )
    return locked


def _instruction_callback(system_run: SystemRun, system, document) -> dict:
    """An instruction's later answer: done (with counts) confirms it, an error refuses it; both
    once. The signature, its nonce and the token have been checked by the caller."""
    counts: dict[str, int] = {}
    reported = _reported_error(document)
    if reported is None:
        try:
            counts = counts_from_answer(system, document)
        except CountsInvalid as invalid:
            raise CallbackRefused(str(invalid), status_code=400, code="invalid_input", field="counts") from None
    action = system_run.instruction.get("action", "")
    with transaction.atomic():
        locked = _locked_waiting(
            system_run, system, INSTRUCTION_WAITING, answered="has already confirmed this instruction",
            waiting="a confirmation",
        )  # fmt: skip
        by = f"{system.name} (callback)"
        if reported is not None:
            instructions.instruction_refuse(
                system_run_id=locked.pk, error=f"{system.name} could not {action}: {reported.strip()[:500]}", by=by
            )
            return {"system": system.name, "action": action, "status": SystemStatus.FAILED}
        instructions.instruction_confirm(system_run_id=locked.pk, counts=counts, by=by)
    return {"system": system.name, "action": action, "status": SystemStatus.DONE, "counts": counts}

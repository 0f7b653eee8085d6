"""HTTP systems told what to do (issue 11): one signed POST per instruction, exactly like the export
call (connectors/http.py: the same signature, `task_key` and `Idempotency-Key`, identities,
reference, due date, callback url and token), with `"mode": "instruct"`, the `action` and its
`items` (see `Instruction` in connectors/base.py) and a plain-text `note`:

    {"mode": "instruct", "action": "erase", "items": [{"collection", "keys", "delete", "fields"}],
     "note": "...", "reference", "identities", "due_date", "callback_url", "callback_token",
     "task_key", "system", "request_type", "collections"}

The system answers `200 {"done": true, "counts": {"<collection>": n}}` (it did it now: confirmed),
or `202` (it will: pending), then POSTs `{"done": true, "counts": {...}}` or `{"error": "..."}` to
the callback url, signed, with the bearer token (services/callbacks.py). A timeout, a refused
connection or a 5xx may pass (the channel retries with backoff); another 4xx fails at once, with
the system's own message. The counts are checked against the data map before they are believed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsr.deadlines import business_today
from dsr.fulfilment.connectors.base import (
    INSTRUCTION_ACTIONS,
    Connector,
    Instructed,
    Instruction,
    Subject,
    instruction_handler_register,
)
from dsr.fulfilment.connectors.http import HttpConnector, _error
from dsr.fulfilment.datamap import System


class CountsInvalid(ValueError):
    """An instruction's answer whose counts are not per collection of the system; names the place."""


def counts_from_answer(system: System, document: Any) -> dict[str, int]:
    """The counts of a confirmation ({"done": true, "counts": {collection: n}}, counts optional),
    every key a collection of `system` and every value a whole number ≥ 0. Raises CountsInvalid."""
    if not isinstance(document, dict) or document.get("done") is not True:
        raise CountsInvalid('the body must be {"done": true, "counts": {...}} or {"error": "..."}')
    counts = document.get("counts", {})
    if counts is None:
        counts = {}
    if not isinstance(counts, dict):
        raise CountsInvalid("'counts' must be an object of collection name -> number of records")
    names = {c.name for c in system.collections}
    checked: dict[str, int] = {}
    for collection, value in counts.items():
        if collection not in names:
            raise CountsInvalid(
                f"'{collection}' is not a collection of {system.name} in the data map "
                f"(one of: {', '.join(sorted(names))})"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CountsInvalid(f"counts.{collection} must be a whole number of records, 0 or more")
        checked[collection] = value
    return checked


# Where the system confirms later, when the caller has not said: the callback url of the subject's
# system run and a fresh token (services/callbacks.py, registered by dsr.fulfilment.wiring:
# connectors never import services). Without it, the system must answer inline.
_callback_preparer: list[Callable[[Subject], Subject]] = []


def callback_preparer_register(function: Callable[[Subject], Subject]) -> None:
    _callback_preparer[:] = [function]


def _with_callback(subject: Subject) -> Subject:
    return _callback_preparer[0](subject) if _callback_preparer else subject


def instruction_payload(connector: HttpConnector, subject: Subject, instruction: Instruction) -> dict[str, Any]:
    body = connector.payload("instruct", subject)
    body.update({"action": instruction.action, "items": list(instruction.items), "note": instruction.note})
    return body


@instruction_handler_register("http", *INSTRUCTION_ACTIONS)
def http_instruct(connector: Connector, subject: Subject, instruction: Instruction) -> Instructed:
    """One signed call: 200 with done → confirmed (its counts), 202 → pending until the callback."""
    assert isinstance(connector, HttpConnector)
    if not subject.callback_url:
        subject = _with_callback(subject)
    answer = connector.call(instruction_payload(connector, subject, instruction))
    name = connector.system.name
    if answer.status == 202:
        told = f"told {name} on {business_today().isoformat()}; waiting for its confirmation"
        return Instructed(confirmed=False, pending=told)
    if answer.status != 200:
        raise connector._refused(answer)
    if isinstance(answer.document, dict) and "error" in answer.document:
        # It answered, and it says it could not: retrying the same instruction will not help.
        raise _error(f"{name} could not {instruction.action}: {str(answer.document['error'])[:300]}", retry=False)
    try:
        counts = counts_from_answer(connector.system, answer.document)
    except CountsInvalid as invalid:
        raise _error(f"{name}'s answer was refused: {invalid}", retry=False) from None
    return Instructed(confirmed=True, counts=counts)

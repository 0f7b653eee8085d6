"""The one small interface every connector implements (the model: Saleor's plugins — one base
class, many implementations, a registry): `find` says which records of a person a system holds,
`export` streams them into a sink, `health` says whether the system can be reached. Part 2 adds
`erase_plan`/`erase` (sql, django: planned, rehearsed and run in one transaction) and `instruct`
(tell the system to do something to the person's records and say whether it confirmed: every kind;
http and manual systems confirm later, through a signed callback or their owner's task link).
A connector is built from its system's entry in the data map; adding a kind of system is one class
registered here and a kind name in the map."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Protocol

from dsr.fulfilment.datamap import System


@dataclass(frozen=True)
class Subject:
    """Who is searched for, and where an asynchronous system answers."""

    reference: str  # the request's reference (sent to processors; never the requester's name)
    identities: dict[str, str]  # identity kind -> value, e.g. {"email": "ann@example.com"}
    request_type: str = "access_specific"
    due_date: date | None = None  # the request's legal due date, sent to processors and owners
    callback_url: str = ""  # where an http system posts its records later
    callback_token: str = ""  # the bearer token that callback must carry (only its digest is stored)
    task_key: str = ""  # the system run's idempotency key, sent with every call


class RecordSink(Protocol):
    def write(self, collection: str, record: dict[str, Any]) -> None: ...


@dataclass
class Found:
    """The primary keys of the person's records, per collection (every collection searched is a
    key, with an empty list where nothing was found)."""

    keys: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.keys.values())


@dataclass
class Exported:
    counts: dict[str, int] = field(default_factory=dict)
    # Non-empty when the system answers later (an http callback, a manual owner): what was asked.
    pending: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Health:
    ok: bool
    detail: str = ""
    latency_ms: float | None = None


# --- Erasure (issue 11): the plan a connector rehearses, the officer approves, the connector runs ---


@dataclass(frozen=True)
class RowPlan:
    """What happens to one collection's rows of the person. `delete` removes the rows whole (a field
    of the collection says `erasure: delete`); otherwise `updates` rewrites fields by strategy
    (`null`, `fixed`, `random`, `hash`) and the row stays. `kept` names the fields kept, with the
    map's `keep_reason`; `mask_instead_of_delete` says the rows are referenced by rows that stay, so
    their fields are masked instead (the reason in `note`)."""

    collection: str
    keys: tuple[Any, ...]  # the primary keys of the person's rows, sorted
    delete: bool = False
    updates: tuple[tuple[str, str], ...] = ()  # (field, strategy), sorted by field
    kept: tuple[tuple[str, str], ...] = ()  # (field, reason), sorted by field
    note: str = ""


@dataclass(frozen=True)
class ErasurePlan:
    """A system's plan, in execution order (children before parents). `problems` are what the
    rehearsal found the plan would break (NOT NULL, unique, foreign key), each naming the
    collection and field: a plan with problems cannot be approved. `counts` is what the rehearsal's
    statements reported, per collection: {"deleted": n, "updated": n, "kept": n}."""

    system: str
    rows: tuple[RowPlan, ...]
    problems: tuple[str, ...] = ()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def digest(self) -> str:
        """SHA-256 of the plan's canonical JSON: what the officer approved is what runs."""
        body = {
            "system": self.system,
            "rows": [
                {
                    "collection": r.collection,
                    "keys": [str(k) for k in r.keys],
                    "delete": r.delete,
                    "updates": [list(u) for u in r.updates],
                    "kept": [list(k) for k in r.kept],
                }
                for r in self.rows
            ],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @property
    def empty(self) -> bool:
        return not any(r.keys for r in self.rows)


@dataclass
class Erased:
    """What the database reported changed, per collection: {"deleted": n, "updated": n}, and per
    updated field the rows changed ({"collection.field": n})."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)


# --- Instructions (issue 11): erase, restrict, opt out, limit, correct — told, then confirmed ---

# What a system can be told to do with a person's records.
INSTRUCTION_ACTIONS = ("erase", "restrict", "opt_out_sale", "limit_sensitive", "correct")


@dataclass(frozen=True)
class Instruction:
    """What a system is told to do. `items` say it per collection, by action:
    erase: {"collection", "keys": [...], "delete": bool, "fields": [field, ...]};
    restrict / opt_out_sale / limit_sensitive: {"collection", "keys": [...], "set": {field: value}}
    (the map's flag fields; a system without keys found gets the identities only);
    correct: {"collection", "key", "field", "value"}. `note` is plain text for a human owner."""

    action: str
    items: tuple[dict[str, Any], ...] = ()
    note: str = ""


@dataclass
class Instructed:
    """The system's answer: `confirmed` when it did it now (an sql/django transaction, an http 200
    that says done); otherwise `pending` says what was asked and where, and the confirmation comes
    later (an http callback, the owner's task). `counts`: per collection, the rows it reports changed."""

    confirmed: bool
    pending: str = ""
    counts: dict[str, int] = field(default_factory=dict)


class PlanChanged(Exception):
    """The person's data changed since the plan was approved: it must be rebuilt and approved again."""


class ConnectorError(Exception):
    """The system could not answer. `retry` says whether trying again may help (a timeout, a
    refused connection) or not (a misconfiguration, an ambiguous identity)."""

    retry = True


class ConnectorMisconfigured(ConnectorError):
    retry = False


class AmbiguousIdentity(ConnectorError):
    """One identity matched several people: the system stops for the officer to resolve rather
    than merge strangers' data into one package."""

    retry = False


class Connector(ABC):
    kind: ClassVar[str]

    def __init__(self, system: System):
        self.system = system

    @abstractmethod
    def find(self, subject: Subject) -> Found: ...

    @abstractmethod
    def export(self, subject: Subject, sink: RecordSink) -> Exported: ...

    @abstractmethod
    def health(self) -> Health: ...

    # Erasure (issue 11). A kind that cannot erase by itself (http, manual) keeps these refusals
    # and is asked by the erasure service through its own channel instead.
    def erase_plan(self, subject: Subject) -> ErasurePlan:
        """Find the person, plan each collection by the map's strategies and rehearse the plan in
        a transaction that is rolled back: nothing changes."""
        raise ConnectorMisconfigured(f"{self.system.name}: a {self.kind} system does not erase by itself")

    def erase(self, subject: Subject, plan: ErasurePlan) -> Erased:
        """Run an approved plan in one transaction; raises PlanChanged (nothing changed) when the
        person's data no longer matches `plan` (its digest), ConnectorError when the system fails
        (rolled back whole)."""
        raise ConnectorMisconfigured(f"{self.system.name}: a {self.kind} system does not erase by itself")

    def instruct(self, subject: Subject, instruction: Instruction) -> Instructed:
        """Tell the system to do `instruction` to the person's records. Raises ConnectorError when
        it cannot be told (retry says whether trying again may help); never claims a confirmation
        the system did not give. Each (kind, action) is one handler registered with
        `instruction_handler_register`, so a new action is a module of its own."""
        handler = INSTRUCTION_HANDLERS.get((self.kind, instruction.action))
        if handler is None:
            raise ConnectorMisconfigured(
                f"{self.system.name}: a {self.kind} system cannot be told to {instruction.action}"
            )
        return handler(self, subject, instruction)


CONNECTORS: dict[str, type[Connector]] = {}

InstructionHandler = Callable[[Connector, Subject, Instruction], Instructed]
# (connector kind, action) -> the function that carries the instruction out on that kind of system.
INSTRUCTION_HANDLERS: dict[tuple[str, str], InstructionHandler] = {}


def instruction_handler_register(kind: str, *actions: str) -> Callable[[InstructionHandler], InstructionHandler]:
    """Decorator: `fn(connector, subject, instruction) -> Instructed` handles `actions` on `kind`."""
    unknown = set(actions) - set(INSTRUCTION_ACTIONS)
    if unknown or not actions:
        raise ValueError(f"unknown instruction actions: {sorted(unknown) or 'none given'}")

    def register(fn: InstructionHandler) -> InstructionHandler:
        for action in actions:
            INSTRUCTION_HANDLERS[(kind, action)] = fn
        return fn

    return register


def connector_register(cls: type[Connector]) -> type[Connector]:
    CONNECTORS[cls.kind] = cls
    return cls


def connector_for(system: System) -> Connector:
    try:
        return CONNECTORS[system.kind](system)
    except KeyError:
        raise ConnectorMisconfigured(f"no connector for kind '{system.kind}'") from None


def ambiguity_check(system: System, collection: str, identity: str, matches: int) -> None:
    """A collection that other collections are found through (the person's own record) must match
    one row per identity: two customers with one email would merge two people's data."""
    if matches > 1 and any(r.source == collection for r in system.references):
        raise AmbiguousIdentity(
            f"{identity} matches {matches} records in {system.name}.{collection}; resolve which person "
            "this is before the search goes on"
        )

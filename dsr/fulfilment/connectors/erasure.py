"""Erasure planning shared by the `sql` and `django` connectors (issue 11): from the person's keys
(the same graph walk as a search) and the map's per-field strategies to an ErasurePlan, in an order
that never breaks a foreign key; the values each strategy writes; and the verification pass.

- A collection with any field `erasure: delete` has its rows deleted — children before parents
  (a reference `customer.id -> orders.customer_id` means orders point at customer). A collection
  whose rows are pointed at by rows that stay is masked instead: its `delete` fields are nulled.
- Otherwise `null` / `fixed` / `random` / `hash` rewrite fields and `keep` keeps them, with the
  map's `keep_reason` (CCPA §1798.105(d), GDPR Art 17(3)).
- A personal field with no strategy is a problem ("no erasure strategy in the map for …"): the
  plan cannot be approved until the map says what to do, never a silent keep. An identity field
  kept while its row stays is a problem too: the person would be found again.
- What a column cannot take (NULL into NOT NULL, one fixed value into a unique column, a hash
  into a number) is a problem at planning and at `dsr_datamap check` (datamap.E006); anything
  else the database refuses is found by the rehearsal, which rolls back."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings

from dsr.fulfilment.connectors.base import Connector, ConnectorMisconfigured, ErasurePlan, RowPlan, Subject
from dsr.fulfilment.datamap import Collection, System

FIXED_TEXT = "[erased]"
# `fixed` without an `erasure_value`: one constant per kind of column.
FIXED_BY_KIND: dict[str, Any] = {
    "text": FIXED_TEXT,
    "int": 0,
    "float": 0.0,
    "bool": False,
    "date": date(1970, 1, 1),
    "datetime": datetime(1970, 1, 1, tzinfo=UTC),
}
REWRITES = ("null", "fixed", "random", "hash")


@dataclass(frozen=True)
class ColumnRule:
    """What a column can take, as the database (or the model) declares it."""

    nullable: bool = True
    unique: bool = False
    kind: str = "text"  # text | int | float | bool | date | datetime | other
    length: int | None = None  # the longest text it holds, when bounded


ColumnRules = Mapping[str, ColumnRule]  # field -> its rule


def erasure_hash(value: Any, length: int | None = None) -> str:
    """HMAC-SHA256 (hex) of the value under DSR_ERASURE_HASH_KEY: the same value gives the same
    hash in every table, so counts and joins still work, and without the key nobody can test
    guesses against it. Cut to a bounded column's length (still the same for the same value)."""
    key = str(getattr(settings, "DSR_ERASURE_HASH_KEY", "") or "")
    if not key:
        raise ConnectorMisconfigured("DSR_ERASURE_HASH_KEY is not set: the 'hash' erasure strategy needs its key")
    digest = hmac.new(key.encode(), str(value).encode(), hashlib.sha256).hexdigest()
    return digest[:length] if length else digest


def _random_value(rule: ColumnRule) -> Any:
    """A random value of the column's type; for text 32 hex digits (128 bits), so a unique column
    stays unique."""
    if rule.kind == "int":
        return secrets.randbelow(2**31 - 1) + 1
    if rule.kind == "float":
        return secrets.randbelow(10**6) / 100
    if rule.kind == "bool":
        return bool(secrets.randbelow(2))
    if rule.kind == "date":
        return date.fromordinal(date(1970, 1, 1).toordinal() + secrets.randbelow(20000))
    if rule.kind == "datetime":
        return datetime.fromtimestamp(secrets.randbelow(2**31 - 1), tz=UTC)
    token = secrets.token_hex(16)
    return token[: rule.length] if rule.length else token


def _fixed_value(collection: Collection, name: str, rule: ColumnRule) -> Any:
    field = collection.field(name)
    if field and field.erasure_value:
        return field.erasure_value
    value = FIXED_BY_KIND.get(rule.kind)
    if isinstance(value, str) and rule.length:
        return value[: rule.length]
    return value


def new_value(collection: Collection, name: str, strategy: str, rule: ColumnRule, old: Any) -> Any:
    """What the strategy writes over `old` (a NULL stays NULL: there is nothing to erase)."""
    if strategy == "null" or old is None:
        return None
    if strategy == "fixed":
        return _fixed_value(collection, name, rule)
    if strategy == "random":
        return _random_value(rule)
    if strategy == "hash":
        return erasure_hash(old, rule.length)
    raise ValueError(f"not a rewriting strategy: {strategy}")


def strategy_problems(system: System, collection: Collection, rules: ColumnRules, *, masked: bool = False) -> list[str]:
    """Strategies the columns cannot take, found from the schema alone (planning and the guard).
    `masked`: the collection's rows stay although it says delete, so its `delete` fields are nulled."""
    found: list[str] = []
    masked_fields = _delete_fields(collection) if masked else set()
    for field in collection.fields:
        rule = rules.get(field.name)
        if rule is None or field.name == collection.primary_key:
            continue
        where = f"{system.name}.{collection.name}.{field.name}"
        strategy = field.erasure
        if strategy == "delete" and field.name in masked_fields and field.name not in _structural(system, collection):
            strategy = "null"  # what a masked row does with it (see rows_plan)
        if strategy == "null" and not rule.nullable:
            found.append(f"{where}: erasure '{field.erasure}' sets NULL, but the column is NOT NULL")
        elif strategy == "fixed" and rule.unique:
            found.append(f"{where}: erasure 'fixed' writes one value into a unique column (use random or hash)")
        elif strategy == "fixed" and FIXED_BY_KIND.get(rule.kind) is None and not field.erasure_value:
            found.append(f"{where}: erasure 'fixed' has no constant for this column's type (give 'erasure_value')")
        elif strategy == "hash" and rule.kind != "text":
            found.append(f"{where}: erasure 'hash' writes text, but the column holds {rule.kind}")
        elif strategy == "random" and rule.kind == "other":
            found.append(f"{where}: erasure 'random' cannot make a value of this column's type")
    return found


def _delete_fields(collection: Collection) -> set[str]:
    return {f.name for f in collection.fields if f.erasure == "delete" and f.name != collection.primary_key}


def _structural(system: System, collection: Collection) -> set[str]:
    """The primary key and the fields references follow: never rewritten by a mask."""
    names = {collection.primary_key}
    for ref in system.references:
        if ref.source == collection.name:
            names.add(ref.source_field)
        if ref.target == collection.name:
            names.add(ref.target_field)
    return names


def rows_plan(system: System, keys: Mapping[str, Iterable[Any]]) -> tuple[list[RowPlan], list[str]]:
    """The plan's rows in execution order (children before parents) and the problems the map
    alone shows. `keys` are the person's primary keys per collection (Found.keys)."""
    order = list(reversed(system.search_order()))  # the search goes parents first
    person = {c.name: tuple(sorted(set(keys.get(c.name, ())), key=_sort_key)) for c in order}
    deleted: set[str] = set()
    masked_by: dict[str, list[str]] = {}
    for collection in order:
        wants_delete = any(f.erasure == "delete" for f in collection.fields)
        if not wants_delete:
            continue
        # Rows that stay and point at this collection's rows: delete would break their key.
        staying = [
            ref.target
            for ref in system.references
            if ref.source == collection.name and person.get(ref.target) and ref.target not in deleted
        ]
        if staying:
            masked_by[collection.name] = sorted(set(staying))
        else:
            deleted.add(collection.name)
    rows: list[RowPlan] = []
    problems: list[str] = []
    for collection in order:
        found = person[collection.name]
        if not found:
            continue
        where = f"{system.name}.{collection.name}"
        if collection.name in deleted:
            rows.append(RowPlan(collection=collection.name, keys=found, delete=True))
            continue
        structural = _structural(system, collection)
        updates: list[tuple[str, str]] = []
        kept: list[tuple[str, str]] = []
        identities = set(collection.identities.values())
        for field in collection.fields:
            strategy = field.erasure
            if strategy == "delete":
                if field.name in structural:
                    continue  # the key others point at stays; the rest of the row is masked
                strategy = "null"
            if strategy in REWRITES:
                updates.append((field.name, strategy))
            elif strategy == "keep":
                kept.append((field.name, field.keep_reason))
                if field.name in identities:
                    problems.append(
                        f"{where}.{field.name}: an identity kept while the row stays (the person would be "
                        "found again): give it null, random or hash"
                    )
            elif field.personal and field.name != collection.primary_key:
                problems.append(f"no erasure strategy in the map for {where}.{field.name}")
        note = ""
        if collection.name in masked_by:
            note = (
                f"masked instead of deleted: rows of {', '.join(masked_by[collection.name])} that stay point "
                "at these rows"
            )
        rows.append(
            RowPlan(
                collection=collection.name,
                keys=found,
                updates=tuple(sorted(updates)),
                kept=tuple(sorted(kept)),
                note=note,
            )
        )
    return rows, problems


def _sort_key(value: Any) -> tuple[str, Any]:
    # Keys of one collection share a type; the name keeps a mixed list sortable all the same.
    return (type(value).__name__, value)


def plan_counts(rows: Iterable[RowPlan], reported: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """{"deleted", "updated", "kept"} per collection: the first two as the statements reported."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        got = reported.get(row.collection, {})
        counts[row.collection] = {
            "deleted": int(got.get("deleted", 0)),
            "updated": int(got.get("updated", 0)),
            "kept": 0 if row.delete else len(row.keys),
        }
    return counts


def integrity_problem(system: System, row: RowPlan, message: str) -> str:
    """A constraint the rehearsal broke, named by collection and (where the message names one of
    its columns) field."""
    collection = system.collection(row.collection)
    text = " ".join((message or "").split())[:240]
    lowered = text.lower()
    named = [f.name for f in collection.fields if f.name.lower() in lowered and f.name != collection.primary_key]
    action = "deleting its rows" if row.delete else "rewriting its rows"
    field = f".{sorted(named, key=len)[-1]}" if named else ""
    return f"{system.name}.{row.collection}{field}: {action} breaks a constraint ({text})"


def erasure_verify(connector: Connector, subject: Subject, plan: ErasurePlan) -> list[str]:
    """After `erase`: search again. Deleted rows must be gone; a row the plan did not list must
    not appear; masked rows stay out of reach when their identities were rewritten. Returns the
    problems (empty: verified)."""
    found = connector.find(subject)
    planned = {row.collection: row for row in plan.rows}
    problems: list[str] = []
    for collection, keys in found.keys.items():
        row = planned.get(collection)
        # Compared as text: a plan read back from its stored JSON has text where keys were UUIDs or dates.
        listed = {str(k) for k in row.keys} if row else set()
        for key in keys:
            if row is None or str(key) not in listed:
                problems.append(f"{plan.system}.{collection}: row {key} is found and was not in the plan")
            elif row.delete:
                problems.append(f"{plan.system}.{collection}: row {key} was to be deleted and is still found")
    return problems

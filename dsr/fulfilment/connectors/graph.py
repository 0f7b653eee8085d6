"""The search every queryable connector (sql, django) makes, written once: visit the collections in
`system.search_order()`; a collection with identities is matched on them; a collection reached by
references is matched on the keys its source collections yielded, a batch of keys per query (one
query per collection per batch, never one per row); only the key values a later collection needs
are kept, so a person's records stream through without sitting in memory whole. A connector
supplies the one query (`rows`); what may be shown is decided later by RecordPolicy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from dsr.fulfilment.connectors.base import Subject, ambiguity_check
from dsr.fulfilment.datamap import Collection, System

BATCH_KEYS = 1000  # keys per `IN (...)` query: well under every driver's parameter limit


@dataclass(frozen=True)
class Match:
    """Rows of a collection where any `equals` field equals its value (the identities), or where
    `field` is one of `values` (a batch of keys from a reference)."""

    equals: tuple[tuple[str, Any], ...] = ()
    field: str = ""
    values: tuple[Any, ...] = ()

    @property
    def by_identity(self) -> bool:
        return bool(self.equals)


Rows = Callable[[Collection, Match], Iterable[dict[str, Any]]]
Emit = Callable[[Collection, dict[str, Any]], None]


def identity_value(kind: str, value: str) -> str:
    """Email addresses are compared as stored: normalised to lower case (docs/connectors-sql.md),
    so the query stays an indexed equality instead of lower(column)."""
    value = str(value).strip()
    return value.lower() if kind == "email" else value


def identity_match(collection: Collection, subject: Subject) -> Match | None:
    equals = tuple(
        (column, identity_value(kind, subject.identities[kind]))
        for kind, column in collection.identities.items()
        if subject.identities.get(kind)
    )
    return Match(equals=equals) if equals else None


def graph_walk(system: System, subject: Subject, rows: Rows, emit: Emit, *, batch: int = BATCH_KEYS) -> dict[str, int]:
    """Follow the graph from the subject's identities; `emit` gets every row found. Returns the
    rows found per collection (every collection is a key). Raises AmbiguousIdentity when an
    identity matches several records of a collection others are found through."""
    sources: dict[str, set[str]] = {}
    for ref in system.references:
        sources.setdefault(ref.source, set()).add(ref.source_field)
    kept: dict[tuple[str, str], dict[Any, None]] = {}  # (collection, field) -> the values, in order
    counts: dict[str, int] = {}
    for collection in system.search_order():
        matches: list[Match] = []
        by_identity = identity_match(collection, subject)
        if by_identity:
            matches.append(by_identity)
        into = system.references_into(collection.name)
        for ref in into:
            values = list(kept.get((ref.source, ref.source_field), ()))
            matches.extend(
                Match(field=ref.target_field, values=tuple(values[start : start + batch]))
                for start in range(0, len(values), batch)
            )
        keep = sorted(sources.get(collection.name, ()))
        for column in keep:
            kept[(collection.name, column)] = {}
        # A row reached twice (by identity and by reference, or by two references) is one record.
        # Batches of one reference never overlap (the keys are distinct), so only then keep keys.
        seen: set[Any] | None = set() if bool(by_identity) + len(into) > 1 else None
        count = 0
        for match in matches:
            found: Iterable[dict[str, Any]] = rows(collection, match)
            if match.by_identity and keep:
                found = _unambiguous(system, collection, match, found)
            for row in found:
                if seen is not None:
                    key = row.get(collection.primary_key)
                    if key in seen:
                        continue
                    seen.add(key)
                for column in keep:
                    value = row.get(column)
                    if value is not None:
                        kept[(collection.name, column)][value] = None
                emit(collection, row)
                count += 1
        counts[collection.name] = count
    return counts


def _unambiguous(system: System, collection: Collection, match: Match, found: Iterable[dict[str, Any]]):
    """The person's own record must be one row: read two, and if there is a second, count them
    all for the message and stop before anything of theirs is written."""
    iterator = iter(found)
    first = list(islice(iterator, 2))
    if len(first) > 1:
        matches = len(first) + sum(1 for _ in iterator)
        ambiguity_check(system, collection.name, " or ".join(c for c, _ in match.equals), matches)
    return first

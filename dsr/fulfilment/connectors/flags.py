"""Restriction (Art 18), opt-out of sale/sharing (§1798.120) and limit of sensitive data
(§1798.121) on the systems this product can write to itself (issue 11). The data map says how a
system marks a person's rows: a collection's `flags: {restrict: <field>, opt_out_sale: <field>,
limit_sensitive: <field>}`. The `sql` and `django` handlers find the person (the same graph walk
as a search), set the flag field to true on their rows — only the rows not yet marked, so telling
a system twice changes nothing the second time — read the rows back inside the same transaction
and confirm with the rows marked per collection; anything short of every row read back marked
rolls the whole system back.

A system whose map declares no flag for the action cannot be told automatically: its owner is
(`instruction_kind` says which kind of connector carries the instruction, in one place)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, transaction
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError

from dsr.fulfilment.categories import FLAG_ACTIONS
from dsr.fulfilment.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorMisconfigured,
    Instructed,
    Instruction,
    Subject,
    instruction_handler_register,
)
from dsr.fulfilment.connectors.django_models import DjangoConnector, model_for, model_rules
from dsr.fulfilment.connectors.erasure import ColumnRule
from dsr.fulfilment.connectors.graph import graph_walk
from dsr.fulfilment.connectors.sql import SqlConnector, column_rules
from dsr.fulfilment.datamap import Collection, System

# The kinds whose connector sets the map's flags itself; any other kind is told by its own handler.
FLAGGING_KINDS = frozenset({"sql", "django"})
# A flag column must take "true": a boolean, or an integer (1).
FLAG_COLUMN_KINDS = frozenset({"bool", "int"})


def flagged_collections(system: System, action: str) -> tuple[Collection, ...]:
    """The collections whose map names a field for `action`, in search order."""
    return tuple(c for c in system.search_order() if action in c.flags)


def instruction_kind(system: System, action: str) -> str:
    """Which kind of connector carries `action` to `system`: an sql or django system with no flag
    declared for it is told through its owner (`manual`), every other system through its own kind."""
    if action in FLAG_ACTIONS and system.kind in FLAGGING_KINDS and not flagged_collections(system, action):
        return "manual"
    return system.kind


def flag_items(system: System, action: str) -> tuple[dict[str, Any], ...]:
    """The instruction's items for `action`: per flagged collection, the field set to true. The keys
    are left empty: the connector finds the person itself, in the transaction that marks them."""
    return tuple(
        {"collection": c.name, "keys": [], "set": {c.flags[action]: True}} for c in flagged_collections(system, action)
    )


def flag_problems(system: System, collection: Collection, rules: dict[str, ColumnRule]) -> list[str]:
    """A flag whose column cannot take true (the guard, datamap.E007): found now, not when told."""
    found = []
    for action, name in collection.flags.items():
        rule = rules.get(name)
        if rule is None:
            continue  # the field's absence is the guard's datamap.E004
        if rule.kind not in FLAG_COLUMN_KINDS:
            found.append(
                f"{system.name}.{collection.name}.{name}: flag '{action}' sets it to true, but the column is "
                f"{rule.kind} (give it a boolean or integer column)"
            )
    return found


def _targets(system: System, instruction: Instruction) -> list[tuple[Collection, str]]:
    """Each item's collection and flag field, checked against the map: an instruction never sets a
    field the map does not name as that action's flag."""
    targets = []
    for item in instruction.items:
        name = item.get("collection")
        collection = next((c for c in system.collections if c.name == name), None)
        if collection is None:
            raise ConnectorMisconfigured(f"{system.name}: no collection '{name}' in the data map")
        flag = collection.flags.get(instruction.action)
        if flag is None or set(item.get("set", {})) != {flag} or item["set"][flag] is not True:
            raise ConnectorMisconfigured(
                f"{system.name}.{name}: the instruction must set the map's {instruction.action} flag "
                f"({flag or 'none declared'}) to true, and nothing else"
            )
        targets.append((collection, flag))
    if not targets:
        raise ConnectorMisconfigured(
            f"{system.name}: the data map declares no flag for {instruction.action}; its owner is told instead"
        )
    return targets


def _true_for(rule: ColumnRule) -> Any:
    return True if rule.kind == "bool" else 1


# --- sql ------------------------------------------------------------------------------------------


@instruction_handler_register("sql", *FLAG_ACTIONS)
def sql_flags_set(connector: Connector, subject: Subject, instruction: Instruction) -> Instructed:
    if not isinstance(connector, SqlConnector):
        raise ConnectorMisconfigured(f"{connector.system.name}: not an sql system")
    system = connector.system
    targets = _targets(system, instruction)
    counts: dict[str, int] = {}
    with connector.writing(commit=True) as connection:
        keys = _sql_keys(connector, connection, subject)
        for collection, flag in targets:
            table = connector._table(connection, collection)
            rule = column_rules(table)[flag]
            if rule.kind not in FLAG_COLUMN_KINDS:
                raise ConnectorMisconfigured(flag_problems(system, collection, {flag: rule})[0])
            value = _true_for(rule)
            key = table.c[collection.primary_key]
            column = table.c[flag]
            found = keys[collection.name]
            marked = 0
            try:
                for start in range(0, len(found), connector.batch):
                    batch = found[start : start + connector.batch]
                    in_batch = key.in_(bindparam("keys", expanding=True))
                    connection.execute(
                        table.update()
                        .where(in_batch, column.is_distinct_from(bindparam("value")))
                        .values({flag: bindparam("value")}),
                        {"keys": batch, "value": value},
                    )
                    # Read back inside the transaction: every row of theirs must now be marked.
                    rows = connection.execute(select(key, column).where(in_batch), {"keys": batch}).all()
                    marked += sum(1 for _, current in rows if current == value)
            except DBAPIError as error:
                raise connector._failure(error, connection.engine, collection) from None
            if marked != len(found):
                raise ConnectorError(
                    f"{system.name}.{collection.name}: {marked} of {len(found)} rows read back with {flag} set"
                )
            counts[collection.name] = marked
    return Instructed(confirmed=True, counts=counts)


def _sql_keys(connector: SqlConnector, connection: Any, subject: Subject) -> dict[str, list[Any]]:
    keys: dict[str, list[Any]] = {c.name: [] for c in connector.system.collections}
    try:
        for collection in connector.system.collections:  # a wrong map fails even when nothing is found
            connector._table(connection, collection)
    except DBAPIError as error:
        raise connector._failure(error, connection.engine, None) from None
    graph_walk(
        connector.system,
        subject,
        lambda collection, match: connector._rows(connection, collection, match),
        lambda collection, row: keys[collection.name].append(row.get(collection.primary_key)),
        batch=connector.batch,
    )
    return keys


# --- django ---------------------------------------------------------------------------------------


@contextmanager
def _django_writing(database: str) -> Iterator[None]:
    try:
        with transaction.atomic(using=database):
            yield
    except DatabaseError as error:
        raise ConnectorError(f"{str(error).strip()[:300]}") from None


@instruction_handler_register("django", *FLAG_ACTIONS)
def django_flags_set(connector: Connector, subject: Subject, instruction: Instruction) -> Instructed:
    if not isinstance(connector, DjangoConnector):
        raise ConnectorMisconfigured(f"{connector.system.name}: not a django system")
    system = connector.system
    targets = _targets(system, instruction)
    counts: dict[str, int] = {}
    with _django_writing(connector.database):
        keys: dict[str, list[Any]] = {c.name: [] for c in system.collections}
        for collection in system.collections:
            connector._queryset(collection)
        graph_walk(
            system,
            subject,
            connector._rows,
            lambda collection, row: keys[collection.name].append(row.get(collection.primary_key)),
            batch=connector.batch,
        )
        for collection, flag in targets:
            model = model_for(system, collection)
            rule = model_rules(model).get(flag)
            if rule is None or rule.kind not in FLAG_COLUMN_KINDS:
                raise ConnectorMisconfigured(
                    flag_problems(system, collection, {flag: rule or ColumnRule(kind="other")})[0]
                )
            value = _true_for(rule)
            manager = model._base_manager.using(connector.database)
            pk = collection.primary_key
            found = keys[collection.name]
            marked = 0
            for start in range(0, len(found), connector.batch):
                batch = found[start : start + connector.batch]
                manager.filter(**{f"{pk}__in": batch}).exclude(**{flag: value}).update(**{flag: value})
                marked += manager.filter(**{f"{pk}__in": batch, flag: value}).count()  # read back
            if marked != len(found):
                raise ConnectorError(
                    f"{system.name}.{collection.name}: {marked} of {len(found)} rows read back with {flag} set"
                )
            counts[collection.name] = marked
    return Instructed(confirmed=True, counts=counts)

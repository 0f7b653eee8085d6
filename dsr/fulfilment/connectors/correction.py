"""Rectification on the systems this product writes itself (Art 16, §7023): the handlers of the
`correct` instruction for `sql` and `django` systems, registered with the connector interface.

An instruction's items are `{"collection", "key", "field", "value"}`. Each system is corrected in
one transaction: every item rewrites only the column the data map declares for it (`corrects:`),
of one row by its primary key, with the value as a bound parameter (SQL) or through the ORM; then
the row is **read back** in the same transaction, and a value read that is not the value written
(a trigger, a column that truncates or normalises) fails the system and rolls it back whole, as
does any failure half-way. An item without a key (a system whose values were not read first) is
applied to every row of the person the connector finds in that collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.db import DatabaseError, DataError, IntegrityError, transaction
from sqlalchemy import select
from sqlalchemy.exc import DataError as SqlDataError
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

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
from dsr.fulfilment.connectors.sql import SqlConnector, column_rules
from dsr.fulfilment.datamap import Collection, System


class CorrectionRefused(ConnectorError):
    """The system refused the value or did not keep it as written: trying again will not help."""

    retry = False


@dataclass(frozen=True)
class CorrectionItem:
    collection: Collection
    key: Any  # None: every row of the person in the collection
    field: str
    value: str


def correction_items(system: System, instruction: Instruction) -> list[CorrectionItem]:
    """The instruction's items, each checked against the map: a known collection, a field the map
    declares correctable there (`corrects:`), a text value. Anything else refuses the whole
    instruction by item number before a row is touched."""
    items = []
    names = {c.name: c for c in system.collections}
    for number, raw in enumerate(instruction.items, start=1):
        where = f"{system.name}: correction item {number}"
        if not isinstance(raw, dict) or not {"collection", "field", "value"} <= set(raw):
            raise ConnectorMisconfigured(f"{where} needs collection, key, field and value")
        collection = names.get(raw["collection"])
        if collection is None:
            raise ConnectorMisconfigured(f"{where}: '{raw['collection']}' is not a collection of {system.name}")
        declared = collection.field(raw["field"])
        if declared is None or not declared.corrects:
            raise ConnectorMisconfigured(
                f"{where}: {collection.name}.{raw['field']} is not a field the data map declares correctable "
                "(corrects:)"
            )
        if not isinstance(raw["value"], str):
            raise ConnectorMisconfigured(f"{where}: the value is text")
        items.append(CorrectionItem(collection=collection, key=raw.get("key"), field=raw["field"], value=raw["value"]))
    return items


def _typed(item: CorrectionItem, rule: ColumnRule | None, system: System) -> Any:
    """The value as the column takes it: text as given, a whole number for an integer column."""
    where = f"{system.name}.{item.collection.name}.{item.field}"
    kind = rule.kind if rule else "text"
    if kind == "text":
        if rule and rule.length and len(item.value) > rule.length:
            raise CorrectionRefused(f"{where}: the value is longer than the column takes ({rule.length})")
        return item.value
    if kind == "int":
        try:
            return int(item.value.strip())
        except ValueError:
            raise CorrectionRefused(f"{where} holds whole numbers; '{item.value[:40]}' is not one") from None
    raise CorrectionRefused(f"{where} is a {kind} column; a correction is applied to text or number columns only")


def _keys_of(connector: Connector, subject: Subject, items: list[CorrectionItem]) -> dict[str, list[Any]]:
    """The person's keys per collection, only when an item names no key (found before writing)."""
    if all(item.key is not None for item in items):
        return {}
    return connector.find(subject).keys


def _read_back_check(system: System, item: CorrectionItem, key: Any, written: Any, read: Any) -> None:
    if read != written:
        raise CorrectionRefused(
            f"{system.name}.{item.collection.name}.{item.field}: row {key} read back a different value than "
            "was written; the system was rolled back"
        )


@instruction_handler_register("sql", "correct")
def sql_correct(connector: Connector, subject: Subject, instruction: Instruction) -> Instructed:
    """One writing transaction: an UPDATE of the declared column by primary key, then a SELECT of
    it, per item and row; committed only when every row read back what was written."""
    sql = cast(SqlConnector, connector)
    system = sql.system
    items = correction_items(system, instruction)
    found = _keys_of(sql, subject, items)
    counts: dict[str, int] = {}
    with sql.writing(commit=True) as connection:  # rolled back whole on any exception
        for item in items:
            table = sql._table(connection, item.collection)
            value = _typed(item, column_rules(table).get(item.field), system)
            key_column = table.c[item.collection.primary_key]
            column = table.c[item.field]
            keys = [item.key] if item.key is not None else found.get(item.collection.name, [])
            for key in keys:
                try:
                    changed = connection.execute(table.update().where(key_column == key).values({item.field: value}))
                except (SqlIntegrityError, SqlDataError) as error:
                    raise CorrectionRefused(
                        f"{system.name}.{item.collection.name}.{item.field}: the database refused the correction of "
                        f"row {key} ({sql._scrub(str(error.orig))}); the system was rolled back"
                    ) from None
                if changed.rowcount != 1:
                    raise CorrectionRefused(
                        f"{system.name}.{item.collection.name}: row {key} is no longer there; nothing was corrected"
                    )
                read = connection.execute(select(column).where(key_column == key)).scalar_one()
                _read_back_check(system, item, key, value, read)
                counts[item.collection.name] = counts.get(item.collection.name, 0) + 1
    return Instructed(confirmed=True, counts=counts)


@instruction_handler_register("django", "correct")
def django_correct(connector: Connector, subject: Subject, instruction: Instruction) -> Instructed:
    """One transaction on the system's database: `update()` of the declared field by primary key
    through the ORM, then the field read back, per item and row."""
    django = cast(DjangoConnector, connector)
    system = django.system
    items = correction_items(system, instruction)
    found = _keys_of(django, subject, items)
    counts: dict[str, int] = {}
    try:
        with transaction.atomic(using=django.database):
            for item in items:
                model = model_for(system, item.collection)
                value = _typed(item, model_rules(model).get(item.field), system)
                manager = model._base_manager.using(django.database)
                pk = item.collection.primary_key
                keys = [item.key] if item.key is not None else found.get(item.collection.name, [])
                for key in keys:
                    if manager.filter(**{pk: key}).update(**{item.field: value}) != 1:
                        raise CorrectionRefused(
                            f"{system.name}.{item.collection.name}: row {key} is no longer there; nothing was corrected"
                        )
                    read = manager.filter(**{pk: key}).values_list(item.field, flat=True).get()
                    _read_back_check(system, item, key, value, read)
                    counts[item.collection.name] = counts.get(item.collection.name, 0) + 1
    except (IntegrityError, DataError) as error:
        raise CorrectionRefused(
            f"{system.name}: the database refused a correction ({str(error).strip()[:300]}); the system was rolled back"
        ) from None
    except DatabaseError as error:
        raise ConnectorError(f"{system.name}: {str(error).strip()[:300]}") from None
    return Instructed(confirmed=True, counts=counts)

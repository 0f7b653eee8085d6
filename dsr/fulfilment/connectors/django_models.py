"""Kind `django`: models of the business's own apps in this project, declared in the map as
`model: app_label.Model` with their identity fields. The same search as `sql` (graph.py): one ORM
query per collection per batch of keys, `.values(*mapped fields).iterator()` so rows stream, inside
one transaction on the database the map names (`connection.database`, default "default") — on
PostgreSQL a read-only REPEATABLE READ snapshot when the search is not already inside one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import DatabaseError, connections, models, transaction
from django.db.models import Q
from django.utils.connection import ConnectionDoesNotExist

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
from dsr.fulfilment.connectors.graph import BATCH_KEYS, Match, graph_walk
from dsr.fulfilment.datamap import Collection, System

CHUNK_ROWS = 2000


def model_for(system: System, collection: Collection) -> type[models.Model]:
    try:
        return apps.get_model(collection.location)
    except (LookupError, ValueError):
        raise ConnectorMisconfigured(
            f"{system.name}.{collection.name}: no model '{collection.location}' is installed"
        ) from None


def model_columns(model: type[models.Model]) -> dict[str, models.Field]:
    """The model's concrete columns by the names a map may use: the attribute name (`customer_id`
    for a foreign key) and, for a foreign key, its field name (`customer`) as well."""
    columns: dict[str, models.Field] = {}
    for field in model._meta.concrete_fields:
        columns[field.attname] = field
        columns.setdefault(field.name, field)
    return columns


@connector_register
class DjangoConnector(Connector):
    kind = "django"
    batch = BATCH_KEYS

    @property
    def database(self) -> str:
        return str(self.system.connection.get("database") or "default")

    def _queryset(self, collection: Collection) -> models.QuerySet:
        model = model_for(self.system, collection)
        columns = model_columns(model)
        missing = [name for name in collection.field_names if name not in columns]
        if missing:
            raise ConnectorMisconfigured(
                f"{self.system.name}.{collection.name}: model {collection.location} has no field "
                f"{', '.join(map(repr, missing))}"
            )
        return model._default_manager.using(self.database).order_by()

    def _rows(self, collection: Collection, match: Match) -> Iterator[dict[str, Any]]:
        queryset = self._queryset(collection)
        if match.by_identity:
            condition = Q()
            for name, value in match.equals:
                condition |= Q(**{name: value})
            queryset = queryset.filter(condition)
        else:
            queryset = queryset.filter(**{f"{match.field}__in": match.values})
        try:
            yield from queryset.values(*collection.field_names).iterator(chunk_size=CHUNK_ROWS)
        except FieldError as error:
            raise ConnectorMisconfigured(f"{self.system.name}.{collection.name}: {error}") from None
        except DatabaseError as error:
            raise ConnectorError(f"{self.system.name}.{collection.name}: {str(error).strip()[:300]}") from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        try:
            connection = connections[self.database]
        except ConnectionDoesNotExist:
            raise ConnectorMisconfigured(
                f"{self.system.name}: no database '{self.database}' in DATABASES (connection.database)"
            ) from None
        outermost = not connection.in_atomic_block
        with transaction.atomic(using=self.database):
            if outermost and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
            # Nothing was written; rolling back keeps it so.
            transaction.set_rollback(True, using=self.database)

    def _walk(self, subject: Subject, emit) -> dict[str, int]:
        for collection in self.system.collections:  # a wrong map fails even when nothing is found
            self._queryset(collection)
        with self.snapshot():
            return graph_walk(self.system, subject, self._rows, emit, batch=self.batch)

    def find(self, subject: Subject) -> Found:
        keys: dict[str, list[Any]] = {c.name: [] for c in self.system.collections}
        self._walk(subject, lambda collection, row: keys[collection.name].append(row.get(collection.primary_key)))
        return Found(keys=keys)

    def export(self, subject: Subject, sink: RecordSink) -> Exported:
        return Exported(counts=self._walk(subject, lambda collection, row: sink.write(collection.name, row)))

    def health(self) -> Health:
        started = time.perf_counter()
        problems = []
        try:
            connection = connections[self.database]
            tables = set(connection.introspection.table_names())
        except ConnectionDoesNotExist:
            return Health(ok=False, detail=f"no database '{self.database}' in DATABASES")
        except DatabaseError as error:
            raise ConnectorError(
                f"{self.system.name}: cannot reach its database ({str(error).strip()[:300]})"
            ) from None
        for collection in self.system.collections:
            try:
                model = model_for(self.system, collection)
                missing = [name for name in collection.field_names if name not in model_columns(model)]
            except (ConnectorMisconfigured, FieldDoesNotExist) as error:
                problems.append(str(error))
                continue
            if model._meta.db_table not in tables:
                problems.append(f"{self.system.name}.{collection.name}: table '{model._meta.db_table}' does not exist")
            if missing:
                problems.append(f"{self.system.name}.{collection.name}: no field {', '.join(map(repr, missing))}")
        latency = round((time.perf_counter() - started) * 1000, 2)
        if problems:
            return Health(ok=False, detail="; ".join(problems), latency_ms=latency)
        return Health(ok=True, detail=f"{len(self.system.collections)} models found", latency_ms=latency)

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
from django.db import DatabaseError, DataError, IntegrityError, connections, models, transaction
from django.db.models import Q
from django.utils.connection import ConnectionDoesNotExist

from dsr.fulfilment.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorMisconfigured,
    Erased,
    ErasurePlan,
    Exported,
    Found,
    Health,
    PlanChanged,
    RecordSink,
    RowPlan,
    Subject,
    connector_register,
)
from dsr.fulfilment.connectors.erasure import (
    ColumnRule,
    integrity_problem,
    new_value,
    plan_counts,
    rows_plan,
    strategy_problems,
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


KINDS = {
    "CharField": "text", "TextField": "text", "EmailField": "text", "SlugField": "text", "URLField": "text",
    "GenericIPAddressField": "other", "IntegerField": "int", "BigIntegerField": "int", "SmallIntegerField": "int",
    "PositiveIntegerField": "int", "PositiveBigIntegerField": "int", "PositiveSmallIntegerField": "int",
    "FloatField": "float", "DecimalField": "float", "BooleanField": "bool", "DateField": "date",
    "DateTimeField": "datetime",
}  # fmt: skip


def model_rules(model: type[models.Model]) -> dict[str, ColumnRule]:
    """What each concrete column can take, from the model (by attribute and field name)."""
    rules: dict[str, ColumnRule] = {}
    for name, field in model_columns(model).items():
        internal = field.get_internal_type()
        if field.is_relation:
            internal = field.target_field.get_internal_type()  # type: ignore[attr-defined]
        rules[name] = ColumnRule(
            nullable=bool(field.null),
            unique=bool(field.unique or field.primary_key),
            kind=KINDS.get(internal, "other"),
            length=field.max_length if KINDS.get(internal) == "text" else None,
        )
    return rules


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

    # --- Erasure (issue 11; planning in connectors/erasure.py) ------------------------------------

    def _plan_in(self, subject: Subject) -> tuple[list[RowPlan], list[str]]:
        keys: dict[str, list[Any]] = {c.name: [] for c in self.system.collections}
        for collection in self.system.collections:
            self._queryset(collection)
        graph_walk(
            self.system,
            subject,
            self._rows,
            lambda collection, row: keys[collection.name].append(row.get(collection.primary_key)),
            batch=self.batch,
        )
        rows, problems = rows_plan(self.system, keys)
        for row in rows:
            collection = self.system.collection(row.collection)
            rules = model_rules(model_for(self.system, collection))
            problems.extend(strategy_problems(self.system, collection, rules, masked=not row.delete))
        return rows, problems

    def _pointing(self, model: type[models.Model], keys: list[Any]) -> list[str]:
        """Rows of other models (or of this one) that still point at `keys`: Django's delete()
        would cascade to them or set them null, outside the plan. The plan's own children are
        deleted before, so whatever is left here was not listed — refused, never cascaded."""
        found = []
        for relation in model._meta.get_fields(include_hidden=True):
            if not (relation.auto_created and not relation.concrete and (relation.one_to_many or relation.one_to_one)):
                continue
            related = relation.related_model
            if related is None or isinstance(related, str):
                continue
            attname = relation.field.attname  # type: ignore[union-attr]
            count = related._base_manager.using(self.database).filter(**{f"{attname}__in": keys}).count()
            if count:
                found.append(f"{count} row{'s' if count != 1 else ''} of {related._meta.label}")
        return found

    def _apply(self, row: RowPlan, fields: dict[str, int]) -> dict[str, int]:
        collection = self.system.collection(row.collection)
        model = model_for(self.system, collection)
        manager = model._base_manager.using(self.database)
        pk = collection.primary_key
        batches = [list(row.keys[start : start + self.batch]) for start in range(0, len(row.keys), self.batch)]
        if row.delete:
            deleted = 0
            for batch in batches:
                pointing = self._pointing(model, batch)
                if pointing:
                    raise IntegrityError(
                        f"{', '.join(pointing)} that the plan does not delete point at these rows "
                        "(Django would cascade or set them null)"
                    )
                # _raw_delete: one DELETE by key, no cascade in Python (checked just above).
                deleted += manager.filter(**{f"{pk}__in": batch})._raw_delete(self.database)
            return {"deleted": deleted, "updated": 0}
        if not row.updates:
            return {"deleted": 0, "updated": 0}
        rules = model_rules(model)
        names = [name for name, _ in row.updates]
        updated = 0
        for batch in batches:
            # Rows that get the same new values (null, fixed) are one UPDATE; a hash or a random
            # value differs per row.
            groups: dict[tuple[tuple[str, Any], ...], list[Any]] = {}
            for record in manager.filter(**{f"{pk}__in": batch}).values(pk, *names).iterator():
                values = {}
                for name, strategy in row.updates:
                    new = new_value(collection, name, strategy, rules[name], record[name])
                    if new != record[name]:
                        values[name] = new
                if values:
                    groups.setdefault(tuple(sorted(values.items())), []).append(record[pk])
            for values_items, group_keys in groups.items():
                count = manager.filter(**{f"{pk}__in": group_keys}).update(**dict(values_items))
                updated += count
                for name, _ in values_items:
                    fields[f"{collection.name}.{name}"] = fields.get(f"{collection.name}.{name}", 0) + count
        return {"deleted": 0, "updated": updated}

    def _constraints_check(self) -> None:
        """Django's foreign keys are deferred to COMMIT, which a rehearsal never reaches: check now."""
        connections[self.database].check_constraints()

    def erase_plan(self, subject: Subject) -> ErasurePlan:
        reported: dict[str, dict[str, int]] = {}
        try:
            with transaction.atomic(using=self.database):
                rows, problems = self._plan_in(subject)
                fields: dict[str, int] = {}
                for row in rows:
                    try:
                        with transaction.atomic(using=self.database):
                            reported[row.collection] = self._apply(row, fields)
                            self._constraints_check()
                    except (IntegrityError, DataError) as error:
                        problems.append(integrity_problem(self.system, row, str(error)))
                transaction.set_rollback(True, using=self.database)  # a rehearsal: nothing stays
        except DatabaseError as error:
            raise ConnectorError(f"{self.system.name}: {str(error).strip()[:300]}") from None
        return ErasurePlan(
            system=self.system.name, rows=tuple(rows), problems=tuple(problems), counts=plan_counts(rows, reported)
        )

    def erase(self, subject: Subject, plan: ErasurePlan) -> Erased:
        erased = Erased()
        try:
            with transaction.atomic(using=self.database):
                rows, problems = self._plan_in(subject)
                if ErasurePlan(system=self.system.name, rows=tuple(rows)).digest() != plan.digest():
                    raise PlanChanged(f"{self.system.name}: the person's data changed since the plan was made")
                if problems or plan.problems:
                    raise ConnectorMisconfigured(
                        f"{self.system.name}: the plan has problems: {'; '.join(problems or plan.problems)}"
                    )
                for row in rows:
                    erased.counts[row.collection] = self._apply(row, erased.fields)
                self._constraints_check()
        except DatabaseError as error:
            raise ConnectorError(f"{self.system.name}: {str(error).strip()[:300]}") from None
        return erased

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

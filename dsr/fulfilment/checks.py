"""The data map's privacy guard, as Django system checks (so `manage.py check`, every management
command and CI fail on it): personal data the map does not classify is personal data a request
to know would silently leave out.

- datamap.E001  the map does not load (each problem named by file, system, collection, field;
                a collection no identity reaches is one of them)
- datamap.E002  a mapped Django model has a concrete column the map does not classify
- datamap.E003  a mapped SQL table has a column the map does not classify
- datamap.E004  a mapped field does not exist in its model or table
- datamap.E005  a mapped model is not installed, or a mapped table does not exist
- datamap.E006  an erasure strategy its column cannot take (NULL into a NOT NULL column, one fixed
                value into a unique column, a hash into a number): refused now, not at execution
- datamap.E007  a collection's flag (restrict, opt_out_sale, limit_sensitive) names a column that
                cannot take true (text, a date): refused now, not when the system is told
- datamap.W001  an SQL system could not be inspected (its DSN variable is not set, or its
                database cannot be reached): the guard could not look, so it says so
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from dsr.fulfilment.connectors.base import ConnectorError
from dsr.fulfilment.connectors.django_models import model_columns, model_for, model_rules
from dsr.fulfilment.connectors.erasure import strategy_problems
from dsr.fulfilment.connectors.flags import flag_problems
from dsr.fulfilment.connectors.sql import SqlConnector, column_rules
from dsr.fulfilment.datamap import DataMap, DataMapError, System, datamap_load

HINT_STRATEGY = "Give the field a strategy its column can take (e.g. random or hash for a unique column)."
HINT_FLAG = "Name a boolean (or integer) column as the flag, e.g. a 'restricted' column that defaults to false."
HINT_CLASSIFY = (
    "Add each column to the collection's fields in the data map with its category ('none' for a column "
    "that is not personal information)."
)


def _django_system(system: System, where: str) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    for collection in system.collections:
        here = f"{where}: system '{system.name}' › collection '{collection.name}'"
        try:
            model = model_for(system, collection)
        except ConnectorError as error:
            found.append(checks.Error(f"{where}: {error}", id="datamap.E005"))
            continue
        columns = model_columns(model)
        missing = [name for name in collection.field_names if name not in columns]
        if missing:
            found.append(
                checks.Error(
                    f"{here}: model {collection.location} has no field {', '.join(map(repr, missing))}",
                    hint="Remove the field from the map or correct its name (a foreign key is mapped as '<name>_id').",
                    id="datamap.E004",
                )
            )
        classified = {columns[name].attname for name in collection.field_names if name in columns}
        unclassified = [f.attname for f in model._meta.concrete_fields if f.attname not in classified]
        if unclassified:
            found.append(
                checks.Error(
                    f"{here}: model {collection.location} has columns the map does not classify: "
                    f"{', '.join(unclassified)}",
                    hint=HINT_CLASSIFY,
                    obj=model,
                    id="datamap.E002",
                )
            )
        if not missing:
            rules = model_rules(model)
            for problem in strategy_problems(system, collection, rules):
                found.append(checks.Error(f"{where}: {problem}", hint=HINT_STRATEGY, obj=model, id="datamap.E006"))
            for problem in flag_problems(system, collection, rules):
                found.append(checks.Error(f"{where}: {problem}", hint=HINT_FLAG, obj=model, id="datamap.E007"))
    return found


def _sql_system(system: System, where: str) -> list[checks.CheckMessage]:
    connector = SqlConnector(system)
    try:
        report = connector.schema_report()
    except ConnectorError as error:
        return [
            checks.Warning(
                f"{where}: system '{system.name}' could not be inspected, so its tables' columns were not "
                f"checked against the map ({error})",
                hint=f"Set {connector.dsn_env} to a reachable database where the check runs (CI).",
                id="datamap.W001",
            )
        ]
    found: list[checks.CheckMessage] = []
    for table in report.missing_tables:
        found.append(
            checks.Error(f"{where}: system '{system.name}': table '{table}' does not exist", id="datamap.E005")
        )
    for name, columns in report.missing_columns.items():
        table = system.collection(name).location
        found.append(
            checks.Error(
                f"{where}: system '{system.name}' › collection '{name}': table '{table}' has no column "
                f"{', '.join(map(repr, columns))}",
                hint="Remove the field from the map or correct its name.",
                id="datamap.E004",
            )
        )
    for name, columns in report.unclassified.items():
        table = system.collection(name).location
        found.append(
            checks.Error(
                f"{where}: system '{system.name}' › collection '{name}': table '{table}' has columns the map "
                f"does not classify: {', '.join(columns)}",
                hint=HINT_CLASSIFY,
                id="datamap.E003",
            )
        )
    found.extend(_sql_strategies(connector, where, skip=set(report.missing_columns)))
    return found


def _sql_strategies(connector: SqlConnector, where: str, *, skip: set[str]) -> list[checks.CheckMessage]:
    """datamap.E006 and E007: each collection's strategies and flags against its reflected table's columns."""
    system = connector.system
    found: list[checks.CheckMessage] = []
    try:
        with connector._connect(connector.engine()) as connection:
            for collection in system.collections:
                if collection.name in skip or not (collection.flags or any(f.erasure for f in collection.fields)):
                    continue
                rules = column_rules(connector._table(connection, collection))
                for problem in strategy_problems(system, collection, rules):
                    found.append(checks.Error(f"{where}: {problem}", hint=HINT_STRATEGY, id="datamap.E006"))
                for problem in flag_problems(system, collection, rules):
                    found.append(checks.Error(f"{where}: {problem}", hint=HINT_FLAG, id="datamap.E007"))
    except ConnectorError:
        return []  # a missing table is reported above (E005)
    return found


def datamap_guard_messages(datamap: DataMap) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    for system in datamap.systems:
        if system.kind == "django":
            found.extend(_django_system(system, datamap.path))
        elif system.kind == "sql":
            found.extend(_sql_system(system, datamap.path))
    return found


@checks.register("datamap")
def datamap_guard(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        datamap = datamap_load()
    except DataMapError as error:
        return [checks.Error(f"{error.path}: {problem}", id="datamap.E001") for problem in error.problems]
    return datamap_guard_messages(datamap)

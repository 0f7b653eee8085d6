"""Kind `sql`: any database SQLAlchemy speaks (PostgreSQL, SQLite, MySQL), by a DSN read from the
environment variable the map names (`connection.dsn_env`; the value is never printed). Read-only
credentials suffice: the connector only selects, inside one read-only transaction per system for
a consistent snapshot, with a statement timeout. Tables and columns are SQLAlchemy constructs
built from the map and every value is a bound parameter: no typed value is ever part of the SQL.

Rows stream: each collection-and-batch query reads a first page of PAGE_ROWS rows in one round
trip (the common case, a person with a few records, costs exactly one statement), and only a
person with more rows than that is read on, from the last key, through a streamed (server-side)
cursor — never the whole result in memory."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Select,
    Table,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    NoSuchTableError,
    SQLAlchemyError,
)

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

DEFAULT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 10
PAGE_ROWS = 2000

# SQLSTATE / MySQL error numbers the connector turns into its own errors.
PG_QUERY_CANCELED = "57014"
PG_UNDEFINED = {"42P01", "42703", "3F000"}  # table, column, schema
MYSQL_TIMED_OUT = {3024, 1317}
MYSQL_UNDEFINED = {1146, 1054, 1049}

POOL_RECYCLE_SECONDS = 1800
_engines: dict[str, Engine] = {}


class ConnectionLost(ConnectorError):
    """A pooled connection was found dead (retried at once, once, before anything was written)."""


_engines_lock = threading.Lock()
# Reflected once per process (the column types make dates come back as dates on every dialect).
_tables: dict[tuple[str, str | None, str], Table] = {}


def _sqlite_read_only(engine: Engine) -> None:
    """pysqlite begins a transaction only before a write; make every connection of this engine
    begin one itself (so a search reads one snapshot) and refuse writes (`query_only`)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # pragma: no branch
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA query_only = ON")

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")


def _psycopg_read_only(engine: Engine) -> None:
    """psycopg 3 starts each transaction with `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`
    when told so once per connection: the snapshot costs no round trip of its own."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record):
        dbapi_connection.read_only = True
        record.info["begins_read_only"] = True


def engine_for(dsn: str) -> Engine:
    """One engine (and so one connection pool) per DSN, made on first use."""
    with _engines_lock:
        engine = _engines.get(dsn)
        if engine is not None:
            return engine
        url = make_url(dsn)
        if url.drivername in ("postgresql", "postgres"):  # the plain scheme means psycopg 3 here
            url = url.set(drivername="postgresql+psycopg")
        backend = url.get_backend_name()
        # No pre-ping (a round trip on every search): a connection found dead is replaced and the
        # search tried again at once, before anything was written (SqlConnector._walk).
        options: dict[str, Any] = {"pool_recycle": POOL_RECYCLE_SECONDS}
        if backend in ("postgresql", "mysql", "mariadb"):
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        if url.drivername == "postgresql+psycopg":
            options["isolation_level"] = "REPEATABLE READ"
        engine = create_engine(url, **options)
        if backend == "sqlite":
            _sqlite_read_only(engine)
        elif url.drivername == "postgresql+psycopg":
            _psycopg_read_only(engine)
        _engines[dsn] = engine
        return engine


def _sqlite_writing(engine: Engine) -> None:
    """Erasure's SQLite engine: a transaction begun explicitly and holding the write lock from
    its first statement (`BEGIN IMMEDIATE`: the re-plan and the writes see one state), with
    foreign keys enforced (SQLite leaves them off per connection unless told)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # pragma: no branch
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def erase_engine_for(dsn: str) -> Engine:
    """The writing engine (erasure), one per DSN, never read-only: kept apart from the search's."""
    with _engines_lock:
        engine = _engines.get(f"erase\x00{dsn}")
        if engine is not None:
            return engine
        url = make_url(dsn)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        backend = url.get_backend_name()
        options: dict[str, Any] = {"pool_recycle": POOL_RECYCLE_SECONDS}
        if backend in ("postgresql", "mysql", "mariadb"):
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        if backend == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        engine = create_engine(url, **options)
        if backend == "sqlite":
            _sqlite_writing(engine)
        _engines[f"erase\x00{dsn}"] = engine
        return engine


def _column_kind(column: Any) -> str:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return "other"
    if issubclass(python_type, bool):
        return "bool"
    if issubclass(python_type, int):
        return "int"
    if issubclass(python_type, float):
        return "float"
    if issubclass(python_type, str):
        return "text"
    if python_type.__name__ == "datetime":
        return "datetime"
    if python_type.__name__ == "date":
        return "date"
    if python_type.__name__ == "Decimal":
        return "float"
    return "other"


def column_rules(table: Table) -> dict[str, ColumnRule]:
    """Each column's NOT NULL, single-column uniqueness (constraint, unique index or primary key),
    kind and length, from the reflected table."""
    unique: set[str] = set()
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and len(constraint.columns) == 1:
            unique.update(c.name for c in constraint.columns)
    for index in table.indexes:
        if index.unique and len(index.columns) == 1:
            unique.update(c.name for c in index.columns)
    if len(table.primary_key.columns) == 1:
        unique.update(c.name for c in table.primary_key.columns)
    return {
        column.name: ColumnRule(
            nullable=bool(column.nullable),
            unique=column.name in unique,
            kind=_column_kind(column),
            length=getattr(column.type, "length", None),
        )
        for column in table.columns
    }


def _engines_forget_after_fork() -> None:
    """In a forked child (a Celery prefork worker, forked after the system checks inspected the
    systems in the parent), never touch the parent's pooled connections: two processes on one
    socket corrupt both sessions. The child opens its own (SQLAlchemy: dispose(close=False))."""
    for engine in list(_engines.values()):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_engines_forget_after_fork)


def engines_dispose() -> None:
    """Close every pooled connection (tests, before dropping the databases they made)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _tables.clear()
        _prepared.clear()


_prepared: dict[tuple[int, tuple[str, ...], tuple[str, ...], str], tuple[Select, Select]] = {}


def _statements(table: Table, collection: Collection, match: Match) -> tuple[Select, Select]:
    """The collection's two queries for this kind of match — the first page, and the rest after a
    key — built once per table and kept: every value, the keys and the page size are bound
    parameters, so the statements (and SQLAlchemy's compiled forms of them) are reused."""
    shape = tuple(name for name, _ in match.equals)
    signature = (id(table), collection.field_names, shape, match.field)
    statements = _prepared.get(signature)
    if statements is None:
        key = table.c[collection.primary_key]
        if match.by_identity:
            where = or_(*(table.c[name] == bindparam(f"value_{i}") for i, name in enumerate(shape)))
        else:
            where = table.c[match.field].in_(bindparam("keys", expanding=True))
        query = select(*(table.c[name] for name in collection.field_names)).where(where).order_by(key)
        statements = (query.limit(bindparam("page_rows")), query.where(key > bindparam("after")))
        with _engines_lock:
            _prepared[signature] = statements
    return statements


@dataclass
class SchemaReport:
    """What the database has against what the map says, per collection."""

    missing_tables: list[str] = field(default_factory=list)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)  # collection -> mapped, absent
    unclassified: dict[str, list[str]] = field(default_factory=dict)  # collection -> present, unmapped

    def problems(self, system: System) -> list[str]:
        found = [f"{system.name}: table '{t}' does not exist" for t in self.missing_tables]
        for collection, columns in self.missing_columns.items():
            table = system.collection(collection).location
            found.append(f"{system.name}.{collection}: table '{table}' has no column {', '.join(map(repr, columns))}")
        return found


@connector_register
class SqlConnector(Connector):
    kind = "sql"
    batch = BATCH_KEYS
    page_rows = PAGE_ROWS

    # --- Connection ---------------------------------------------------------------------------

    @property
    def dsn_env(self) -> str:
        return str(self.system.connection.get("dsn_env", ""))

    @property
    def schema(self) -> str | None:
        return self.system.connection.get("schema") or None

    @property
    def timeout_ms(self) -> int:
        return int(self.system.connection.get("statement_timeout_ms") or DEFAULT_TIMEOUT_MS)

    def _dsn(self) -> str:
        dsn = os.environ.get(self.dsn_env, "") if self.dsn_env else ""
        if not dsn:
            raise ConnectorMisconfigured(
                f"{self.system.name}: the environment variable {self.dsn_env or '(connection.dsn_env)'} that "
                "names its database is not set"
            )
        return dsn

    def engine(self) -> Engine:
        dsn = self._dsn()
        try:
            url = make_url(dsn)
        except ArgumentError:
            raise ConnectorMisconfigured(
                f"{self.system.name}: {self.dsn_env} does not hold a database URL (e.g. postgresql+psycopg://…)"
            ) from None
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            if not url.database.startswith("file:") and not Path(url.database).is_file():
                # SQLite would create an empty file: say the database is missing instead.
                raise ConnectorError(
                    f"{self.system.name}: the SQLite database that {self.dsn_env} names does not exist"
                )
        try:
            return engine_for(dsn)
        except (ArgumentError, NoSuchModuleError) as error:
            raise ConnectorMisconfigured(
                f"{self.system.name}: {self.dsn_env} names a database SQLAlchemy cannot use ({type(error).__name__})"
            ) from None

    def _scrub(self, message: str) -> str:
        """A driver's message, first line only, without the DSN or its password."""
        line = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
        dsn = os.environ.get(self.dsn_env, "")
        secrets = [dsn]
        try:
            secrets.append(make_url(dsn).password or "")
        except ArgumentError:
            pass
        for secret in filter(None, secrets):
            line = line.replace(str(secret), "…")
        return line[:300]

    def _connect(self, engine: Engine) -> Connection:
        try:
            return engine.connect()
        except DBAPIError as error:
            raise ConnectorError(
                f"{self.system.name}: cannot connect to its database ({self._scrub(str(error.orig))})"
            ) from None

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read-only transaction with the statement timeout set: a consistent snapshot of the
        system for the whole search. Rolled back at the end (it never wrote anything)."""
        engine = self.engine()
        connection = self._connect(engine)
        session_timeout = False
        try:
            with connection.begin() as transaction:
                dialect = connection.dialect.name
                try:
                    if dialect == "postgresql":
                        if not connection.info.get("begins_read_only"):  # another driver than psycopg 3
                            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
                        if connection.info.get("statement_timeout_ms") != self.timeout_ms:
                            # Local to this transaction; kept for the connection's next searches
                            # once they commit (below), so a search costs no round trip for it.
                            connection.execute(
                                text("SELECT set_config('statement_timeout', :ms, false)"),
                                {"ms": str(self.timeout_ms)},
                            )
                            session_timeout = True
                    elif dialect in ("mysql", "mariadb"):
                        connection.execute(text("SET SESSION max_execution_time = :ms"), {"ms": self.timeout_ms})
                        # Before the first read, which starts the transaction (SET starts none).
                        connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
                except DBAPIError as error:
                    raise self._failure(error, engine, None) from None
                yield connection
                if session_timeout:  # nothing was written (read-only): committing keeps the setting
                    transaction.commit()
                    connection.info["statement_timeout_ms"] = self.timeout_ms
                else:
                    transaction.rollback()
        finally:
            connection.close()

    # --- Queries -------------------------------------------------------------------------------

    def _table(self, connection: Connection, collection: Collection) -> Table:
        key = (self._dsn(), self.schema, collection.location)
        table = _tables.get(key)
        if table is not None and any(name not in table.c for name in collection.field_names):
            table = None  # the map names a column added since the table was reflected: look again
        if table is None:
            try:
                table = Table(collection.location, MetaData(schema=self.schema), autoload_with=connection)
            except NoSuchTableError:
                raise ConnectorMisconfigured(
                    f"{self.system.name}.{collection.name}: table '{collection.location}' does not exist"
                ) from None
            with _engines_lock:
                _tables[key] = table
        missing = [name for name in collection.field_names if name not in table.c]
        if missing:
            raise ConnectorMisconfigured(
                f"{self.system.name}.{collection.name}: table '{collection.location}' has no column "
                f"{', '.join(map(repr, missing))}"
            )
        return table

    def _rows(self, connection: Connection, collection: Collection, match: Match) -> Iterator[dict[str, Any]]:
        try:
            table = self._table(connection, collection)
        except DBAPIError as error:
            raise self._failure(error, connection.engine, collection) from None
        first, rest = _statements(table, collection, match)
        if match.by_identity:
            values: dict[str, Any] = {f"value_{i}": value for i, (_, value) in enumerate(match.equals)}
        else:
            values = {"keys": list(match.values)}
        try:
            page = connection.execute(first, {**values, "page_rows": self.page_rows}).mappings().all()
            yield from (dict(row) for row in page)
            if len(page) < self.page_rows:
                return
            # More than a page: read on from the last key through a streamed cursor.
            after = {**values, "after": page[-1][collection.primary_key]}
            with connection.execute(rest, after, execution_options={"yield_per": self.page_rows}) as result:
                for row in result.mappings():
                    yield dict(row)
        except DBAPIError as error:
            raise self._failure(error, connection.engine, collection) from None

    def _walk(self, subject: Subject, emit) -> dict[str, int]:
        """The search, tried once more at once when a pooled connection turns out dead (the
        database restarted) before a single row was passed on; a second loss is the system's."""
        written = 0

        def counted(collection: Collection, row: dict[str, Any]) -> None:
            nonlocal written
            written += 1
            emit(collection, row)

        try:
            return self._walk_once(subject, counted)
        except ConnectionLost:
            if written:
                raise
            return self._walk_once(subject, counted)

    def _walk_once(self, subject: Subject, emit) -> dict[str, int]:
        with self.snapshot() as connection:
            for collection in self.system.collections:  # a wrong map fails even when nothing is found
                try:
                    self._table(connection, collection)
                except DBAPIError as error:
                    raise self._failure(error, connection.engine, collection) from None
            return graph_walk(
                self.system,
                subject,
                lambda collection, match: self._rows(connection, collection, match),
                emit,
                batch=self.batch,
            )

    def find(self, subject: Subject) -> Found:
        keys: dict[str, list[Any]] = {c.name: [] for c in self.system.collections}

        def collect(collection: Collection, row: dict[str, Any]) -> None:
            keys[collection.name].append(row.get(collection.primary_key))

        self._walk(subject, collect)
        return Found(keys=keys)

    def export(self, subject: Subject, sink: RecordSink) -> Exported:
        counts = self._walk(subject, lambda collection, row: sink.write(collection.name, row))
        return Exported(counts=counts)

    # --- Erasure (issue 11; planning in connectors/erasure.py) ------------------------------------

    @property
    def erase_dsn_env(self) -> str:
        return str(self.system.connection.get("erase_dsn_env") or self.dsn_env)

    def erase_engine(self) -> Engine:
        self.engine()  # the search's DSN must be usable too (the tables are reflected through it)
        dsn = os.environ.get(self.erase_dsn_env, "") if self.erase_dsn_env else ""
        if not dsn:
            raise ConnectorMisconfigured(
                f"{self.system.name}: the environment variable {self.erase_dsn_env} that names its writing "
                "database (connection.erase_dsn_env) is not set"
            )
        try:
            url = make_url(dsn)
            if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
                if not url.database.startswith("file:") and not Path(url.database).is_file():
                    raise ConnectorError(
                        f"{self.system.name}: the SQLite database that {self.erase_dsn_env} names does not exist"
                    )
            return erase_engine_for(dsn)
        except (ArgumentError, NoSuchModuleError):
            raise ConnectorMisconfigured(
                f"{self.system.name}: {self.erase_dsn_env} does not hold a database URL SQLAlchemy can use"
            ) from None

    @contextmanager
    def writing(self, *, commit: bool) -> Iterator[Connection]:
        """One writing transaction for the whole system, committed only when `commit` and nothing
        failed; otherwise rolled back (the rehearsal always is)."""
        engine = self.erase_engine()
        connection = self._connect(engine)
        try:
            transaction = connection.begin()
            try:
                dialect = connection.dialect.name
                if dialect == "postgresql":
                    connection.execute(
                        text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(self.timeout_ms)}
                    )
                    # A deferred foreign key would only complain at COMMIT: the rehearsal never commits.
                    connection.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
                elif dialect in ("mysql", "mariadb"):
                    connection.execute(text("SET SESSION max_execution_time = :ms"), {"ms": self.timeout_ms})
                yield connection
            except BaseException:
                transaction.rollback()
                raise
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
        except DBAPIError as error:
            raise self._failure(error, engine, None) from None
        finally:
            connection.close()

    def _plan_in(self, connection: Connection, subject: Subject) -> tuple[list[RowPlan], list[str]]:
        keys: dict[str, list[Any]] = {c.name: [] for c in self.system.collections}
        try:
            for collection in self.system.collections:
                self._table(connection, collection)
        except DBAPIError as error:
            raise self._failure(error, connection.engine, None) from None
        graph_walk(
            self.system,
            subject,
            lambda collection, match: self._rows(connection, collection, match),
            lambda collection, row: keys[collection.name].append(row.get(collection.primary_key)),
            batch=self.batch,
        )
        rows, problems = rows_plan(self.system, keys)
        for row in rows:
            collection = self.system.collection(row.collection)
            rules = column_rules(self._table(connection, collection))
            problems.extend(strategy_problems(self.system, collection, rules, masked=not row.delete))
        return rows, problems

    def _apply(self, connection: Connection, row: RowPlan, fields: dict[str, int]) -> dict[str, int]:
        """Run one collection's statements; every key and value a bound parameter, keys in
        batches. Returns what the database reported: {"deleted": n, "updated": n}."""
        collection = self.system.collection(row.collection)
        table = self._table(connection, collection)
        key = table.c[collection.primary_key]
        in_batch = key.in_(bindparam("keys", expanding=True))
        batches = [list(row.keys[start : start + self.batch]) for start in range(0, len(row.keys), self.batch)]
        if row.delete:
            deleted = 0
            for batch in batches:
                deleted += connection.execute(table.delete().where(in_batch), {"keys": batch}).rowcount
            return {"deleted": deleted, "updated": 0}
        if not row.updates:
            return {"deleted": 0, "updated": 0}
        rules = column_rules(table)
        names = [name for name, _ in row.updates]
        updated = 0
        for batch in batches:
            current = connection.execute(select(key, *(table.c[n] for n in names)).where(in_batch), {"keys": batch})
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for record in current.mappings():
                values: dict[str, Any] = {}
                for name, strategy in row.updates:
                    old = record[name]
                    new = new_value(collection, name, strategy, rules[name], old)
                    if new != old:
                        values[name] = new
                if values:
                    changed = tuple(sorted(values))
                    params = {"row_key": record[collection.primary_key]}
                    params.update({f"value_{i}": values[name] for i, name in enumerate(changed)})
                    groups.setdefault(changed, []).append(params)
            for changed, params_list in groups.items():
                statement = (
                    table.update()
                    .where(key == bindparam("row_key"))
                    .values({name: bindparam(f"value_{i}") for i, name in enumerate(changed)})
                )
                count = connection.execute(statement, params_list).rowcount
                updated += count
                for name in changed:
                    fields[f"{collection.name}.{name}"] = fields.get(f"{collection.name}.{name}", 0) + count
        return {"deleted": 0, "updated": updated}

    def erase_plan(self, subject: Subject) -> ErasurePlan:
        """Plan, then rehearse every statement in a transaction that is rolled back: the counts
        are the database's, and what it refuses (NOT NULL, unique, foreign key, a value too long)
        becomes a problem naming the collection and field. Nothing is changed."""
        reported: dict[str, dict[str, int]] = {}
        with self.writing(commit=False) as connection:
            rows, problems = self._plan_in(connection, subject)
            fields: dict[str, int] = {}
            for row in rows:
                savepoint = connection.begin_nested()
                try:
                    reported[row.collection] = self._apply(connection, row, fields)
                except (IntegrityError, DataError) as error:
                    savepoint.rollback()
                    problems.append(integrity_problem(self.system, row, str(error.orig)))
                    continue
                except DBAPIError as error:
                    savepoint.rollback()
                    raise self._failure(error, connection.engine, self.system.collection(row.collection)) from None
                savepoint.commit()  # released into the outer transaction, which is rolled back
        return ErasurePlan(
            system=self.system.name,
            rows=tuple(rows),
            problems=tuple(problems),
            counts=plan_counts(rows, reported),
        )

    def erase(self, subject: Subject, plan: ErasurePlan) -> Erased:
        """In one transaction: find again, refuse (PlanChanged, nothing changed) unless the plan is
        the one approved, run it; any failure rolls the whole system back."""
        erased = Erased()
        with self.writing(commit=True) as connection:
            rows, problems = self._plan_in(connection, subject)
            if ErasurePlan(system=self.system.name, rows=tuple(rows)).digest() != plan.digest():
                raise PlanChanged(f"{self.system.name}: the person's data changed since the plan was made")
            if problems or plan.problems:
                raise ConnectorMisconfigured(
                    f"{self.system.name}: the plan has problems: {'; '.join(problems or plan.problems)}"
                )
            for row in rows:
                try:
                    erased.counts[row.collection] = self._apply(connection, row, erased.fields)
                except DBAPIError as error:
                    raise self._failure(error, connection.engine, self.system.collection(row.collection)) from None
        return erased

    # --- Errors and health ---------------------------------------------------------------------

    def _failure(self, error: DBAPIError, engine: Engine, collection: Collection | None) -> ConnectorError:
        original = error.orig
        sqlstate = getattr(original, "sqlstate", None)
        args = getattr(original, "args", None)
        number = args[0] if args else None
        where = f"{self.system.name}.{collection.name}" if collection else self.system.name
        if sqlstate == PG_QUERY_CANCELED or number in MYSQL_TIMED_OUT:
            return ConnectorError(f"{where} timed out after {self.timeout_ms} ms")
        message = str(original)
        undefined = (
            sqlstate in PG_UNDEFINED
            or number in MYSQL_UNDEFINED
            or "no such table" in message
            or "no such column" in message
        )
        if undefined:
            try:
                problems = self.schema_report(engine).problems(self.system)
            except ConnectorError:
                problems = []
            return ConnectorMisconfigured("; ".join(problems) or f"{where}: {self._scrub(message)}")
        if error.connection_invalidated:
            return ConnectionLost(f"{where}: the connection to its database was lost ({self._scrub(message)})")
        return ConnectorError(f"{where}: {self._scrub(message)}")

    def schema_report(self, engine: Engine | None = None) -> SchemaReport:
        """Compare the database's tables and columns with the map (the guard and health read it)."""
        engine = engine or self.engine()
        report = SchemaReport()
        with self._connect(engine) as connection:
            try:
                inspector = inspect(connection)
                for collection in self.system.collections:
                    try:
                        present = [c["name"] for c in inspector.get_columns(collection.location, schema=self.schema)]
                    except NoSuchTableError:
                        present = []
                    if not present:
                        report.missing_tables.append(
                            f"{self.schema}.{collection.location}" if self.schema else collection.location
                        )
                        continue
                    missing = [name for name in collection.field_names if name not in present]
                    if missing:
                        report.missing_columns[collection.name] = missing
                    unmapped = [name for name in present if collection.field(name) is None]
                    if unmapped:
                        report.unclassified[collection.name] = unmapped
            except DBAPIError as error:
                raise ConnectorError(
                    f"{self.system.name}: cannot inspect its database ({self._scrub(str(error.orig))})"
                ) from None
            except SQLAlchemyError as error:
                raise ConnectorError(
                    f"{self.system.name}: cannot inspect its database ({type(error).__name__})"
                ) from None
        return report

    def health(self) -> Health:
        started = time.perf_counter()
        engine = self.engine()
        with self._connect(engine) as connection:
            try:
                connection.execute(text("SELECT 1")).scalar_one()
            except DBAPIError as error:
                raise self._failure(error, engine, None) from None
        problems = self.schema_report(engine).problems(self.system)
        latency = round((time.perf_counter() - started) * 1000, 2)
        if problems:
            return Health(ok=False, detail="; ".join(problems), latency_ms=latency)
        tables = len(self.system.collections)
        return Health(ok=True, detail=f"{tables} table{'s' if tables != 1 else ''} found", latency_ms=latency)

"""A small shop for the correction tests, as a real `sql` system: a SQLite file, or a schema of a
PostgreSQL database made for the module (DATABASE_URL). Two customers and a contact table that
points at them; `city` has a CHECK the database enforces (a failure half-way); `edits` counts the
UPDATEs of a customer row (a trigger), so a second application would show."""

from __future__ import annotations

import os
import textwrap
import uuid

import pytest
from sqlalchemy import create_engine, text

from dsr.fulfilment.connectors.base import Subject
from dsr.fulfilment.connectors.sql import SqlConnector, engines_dispose
from dsr.fulfilment.datamap import datamap_parse
from tests.fulfilment.company import _postgres_url

DSN_ENV = "DSR_TEST_CORRECT_DSN"
ANN = Subject(reference="DSR-TEST", identities={"email": "ann@example.com"}, request_type="rectification")

COLLECTIONS = """
- name: customer
  identities: {email: email}
  fields:
    id: none
    email: {category: identifiers, corrects: email}
    name: {category: identifiers, corrects: full_name}
    city: {category: customer_records, corrects: postal_address}
    edits: none
- name: contact
  fields:
    id: none
    customer_id: none
    phone: {category: identifiers, corrects: phone}
"""


def system_yaml(schema: str | None, *, name: str = "shop", recipients: str = "") -> str:
    connection = f"{{dsn_env: {DSN_ENV}{', schema: ' + schema if schema else ''}}}"
    return (
        f"  - name: {name}\n    owner: data@example.com\n    kind: sql\n    connection: {connection}\n"
        + (f"    recipients:\n{textwrap.indent(textwrap.dedent(recipients).strip(), '      ')}\n" if recipients else "")
        + "    references:\n      - customer.id -> contact.customer_id\n    collections:\n"
        + textwrap.indent(textwrap.dedent(COLLECTIONS).strip("\n"), "      ")
        + "\n"
    )


class Shop:
    def __init__(self, backend: str, dsn: str, schema: str | None, engine):
        self.backend, self.dsn, self.schema, self.engine = backend, dsn, schema, engine

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def connector(self) -> SqlConnector:
        return SqlConnector(datamap_parse(("systems:\n" + system_yaml(self.schema)).encode()).system("shop"))

    def rows(self, name: str) -> list[dict]:
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(text(f"SELECT * FROM {self.table(name)} ORDER BY id")).mappings()]

    def execute(self, sql: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(sql))

    def uppercase_names(self) -> None:
        """A trigger that rewrites every name written: what is read back is not what was written."""
        if self.backend == "sqlite":
            self.execute(
                "CREATE TRIGGER name_upper AFTER UPDATE OF name ON customer "
                "BEGIN UPDATE customer SET name = upper(NEW.name) WHERE id = NEW.id; END"
            )
        else:
            self.execute(
                f"CREATE FUNCTION {self.schema}.name_upper() RETURNS trigger AS $$ "
                "BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            self.execute(
                f"CREATE TRIGGER name_upper BEFORE UPDATE OF name ON {self.table('customer')} "
                f"FOR EACH ROW EXECUTE FUNCTION {self.schema}.name_upper()"
            )


def _create(engine, schema: str | None, backend: str) -> None:
    prefix = f"{schema}." if schema else ""
    statements = [
        f"CREATE TABLE {prefix}customer (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL, "
        "city VARCHAR(20) CHECK (length(city) <= 20), edits INTEGER NOT NULL DEFAULT 0)",
        f"CREATE TABLE {prefix}contact (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL "
        f"REFERENCES {prefix}customer(id), phone TEXT)",
        f"INSERT INTO {prefix}customer (id, email, name, city) VALUES (1, 'ann@example.com', 'Ann', 'Oslo'), "
        "(2, 'bob@example.com', 'Bob', 'Rome')",
        f"INSERT INTO {prefix}contact (id, customer_id, phone) VALUES (10, 1, '+1 555 0101'), "
        "(11, 1, '+1 555 0109'), (12, 2, '+1 555 0102')",
    ]
    if backend == "sqlite":
        statements.append(
            "CREATE TRIGGER customer_edits AFTER UPDATE OF email, name, city ON customer "
            "BEGIN UPDATE customer SET edits = edits + 1 WHERE id = NEW.id; END"
        )
    else:
        statements += [
            f"CREATE FUNCTION {schema}.customer_edits() RETURNS trigger AS $$ "
            "BEGIN NEW.edits := OLD.edits + 1; RETURN NEW; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER customer_edits BEFORE UPDATE OF email, name, city ON {prefix}customer "
            f"FOR EACH ROW EXECUTE FUNCTION {schema}.customer_edits()",
        ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shop_backend(request):
    if request.param == "sqlite":
        yield ("sqlite", None)
        return
    base = _postgres_url()
    name = f"dsr_correct_{uuid.uuid4().hex[:10]}"
    server = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ("postgresql", base.set(database=name))
    finally:
        engines_dispose()
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def correction_shop(shop_backend, tmp_path):
    backend, url = shop_backend
    previous = os.environ.get(DSN_ENV)
    if backend == "sqlite":
        dsn = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
        engine = create_engine(dsn)
        schema = None
    else:
        dsn = url.render_as_string(hide_password=False)
        engine = create_engine(url)
        schema = f"s_{uuid.uuid4().hex[:8]}"
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    _create(engine, schema, backend)
    os.environ[DSN_ENV] = dsn
    try:
        yield Shop(backend, dsn, schema, engine)
    finally:
        if previous is None:
            os.environ.pop(DSN_ENV, None)
        else:
            os.environ[DSN_ENV] = previous
        engines_dispose()
        engine.dispose()

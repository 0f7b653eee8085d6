"""A company's own database for the `sql` connector's tests: the demo shop's tables (the bench's
shape) plus order_items, in a SQLite file, and — when DATABASE_URL is PostgreSQL — in a database of
its own made for the module and dropped after it, inside a schema (the `schema` setting).

People: ann@example.com (a customer with orders, items, a chat, a call and two newsletters),
bob@example.com (a customer with nothing else), twin@example.com (two customers: ambiguous),
many@example.com (MANY_ORDERS orders with one item each), and robin@example.com (a newsletter
only)."""

from __future__ import annotations

import os
import textwrap
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, ForeignKey, Index, Integer, Table, Text, create_engine, text
from sqlalchemy.engine import make_url

from dsr.fulfilment.connectors.base import Subject
from dsr.fulfilment.connectors.sql import engines_dispose
from dsr.fulfilment.demo_shop import BigKey, shop_metadata
from tests.support.services import service_missing

MANY_ORDERS = 10_500
NOW = datetime.now(UTC).replace(microsecond=0)
DSN_ENV = "DSR_TEST_COMPANY_DSN"

FIELDS = textwrap.dedent(
    """
      - name: customer
        identities: {email: email}
        fields: {id: identifiers, email: identifiers, name: identifiers, phone: identifiers,
                 address_line: customer_records, city: customer_records, postal_code: customer_records,
                 country: customer_records, date_of_birth: protected_classifications, created_at: none}
      - name: orders
        dated_by: ordered_at
        fields: {id: none, customer_id: none, ordered_at: commercial_information, status: commercial_information,
                 total_cents: commercial_information, shipping_name: identifiers,
                 shipping_address: customer_records}
      - name: order_items
        fields: {id: none, order_id: none, sku: commercial_information}
      - name: newsletter_subscriptions
        identities: {email: email}
        fields: {id: none, email: identifiers, list_name: commercial_information,
                 subscribed_at: commercial_information, ip_address: internet_activity}
      - name: chat_messages
        fields: {id: none, customer_id: none, body: {category: customer_records, others_data: true},
                 channel: internet_activity, created_at: internet_activity}
      - name: call_records
        fields: {id: none, customer_id: none, started_at: sensory_data, duration_seconds: sensory_data,
                 phone_number: identifiers, agent_notes: {category: customer_records, others_data: true}}
    """
)
REFERENCES = [
    "customer.id -> orders.customer_id",
    "orders.id -> order_items.order_id",
    "customer.id -> chat_messages.customer_id",
    "customer.id -> call_records.customer_id",
]


@dataclass
class Company:
    backend: str  # sqlite | postgresql
    dsn: str
    schema: str | None
    writer: Engine  # the test's own engine (the connector's is read-only)

    def datamap(self, *, timeout_ms: int = 5000, collections: str = FIELDS, references=REFERENCES) -> str:
        schema = f", schema: {self.schema}" if self.schema else ""
        refs = "\n".join(f"      - {r}" for r in references)
        return (
            "systems:\n"
            "  - name: company\n"
            "    owner: data@example.com\n"
            "    kind: sql\n"
            f"    connection: {{dsn_env: {DSN_ENV}, statement_timeout_ms: {timeout_ms}{schema}}}\n"
            f"    references:\n{refs}\n"
            "    collections:\n" + textwrap.indent(textwrap.dedent(collections).strip("\n"), "      ") + "\n"
        )

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def count(self, name: str) -> int:
        with self.writer.connect() as connection:
            return connection.execute(text(f"SELECT count(*) FROM {self.table(name)}")).scalar_one()


def subject(email: str, **identities: str) -> Subject:
    return Subject(reference="DSR-TEST", identities={"email": email, **identities})


def _fill(engine: Engine, schema: str | None) -> None:
    metadata = shop_metadata(schema, unique_email=False)
    prefix = f"{schema}." if schema else ""
    Table(
        "order_items", metadata,
        Column("id", BigKey, primary_key=True),
        Column("order_id", Integer, ForeignKey(f"{prefix}orders.id"), nullable=False),
        Column("sku", Text),
        Index("items_order_id_idx", "order_id"),
    )  # fmt: skip
    t = metadata.tables
    name = (lambda n: f"{schema}.{n}") if schema else (lambda n: n)
    with engine.begin() as connection:
        metadata.create_all(connection)
        people = [(1, "ann@example.com", "Ann Example"), (2, "bob@example.com", "Bob Example"),
                  (3, "twin@example.com", "Twin One"), (4, "twin@example.com", "Twin Two"),
                  (5, "many@example.com", "Many Orders")]  # fmt: skip
        connection.execute(
            t[name("customer")].insert(),
            [{"id": i, "email": e, "name": n, "phone": f"+1 555 010{i}", "created_at": NOW - timedelta(days=400)}
             for i, e, n in people],
        )  # fmt: skip
        orders = [
            {"id": 1, "customer_id": 1, "ordered_at": NOW - timedelta(days=10), "status": "shipped", "total_cents": 100},
            {"id": 2, "customer_id": 1, "ordered_at": NOW - timedelta(days=500), "status": "delivered", "total_cents": 200},
            {"id": 3, "customer_id": 1, "ordered_at": NOW - timedelta(days=20), "status": "placed", "total_cents": 300},
            {"id": 4, "customer_id": 3, "ordered_at": NOW, "status": "placed", "total_cents": 1},
        ]  # fmt: skip
        address = "x" * 400  # big rows, so that holding them all would show in the memory test
        orders += [
            {"id": 100 + k, "customer_id": 5, "ordered_at": NOW - timedelta(minutes=k), "status": "placed",
             "total_cents": k, "shipping_address": f"{k} {address}"}
            for k in range(MANY_ORDERS)
        ]  # fmt: skip
        for order in orders:  # one statement for all rows: every row names every column
            order.setdefault("shipping_name", f"Name {order['customer_id']}")
            order.setdefault("shipping_address", "1 Main Street")
        connection.execute(t[name("orders")].insert(), orders)
        items = [{"id": 1, "order_id": 1, "sku": "A"}, {"id": 2, "order_id": 1, "sku": "B"},
                 {"id": 3, "order_id": 3, "sku": "C"}]  # fmt: skip
        items += [{"id": 100 + k, "order_id": 100 + k, "sku": "M"} for k in range(MANY_ORDERS)]
        connection.execute(t[name("order_items")].insert(), items)
        connection.execute(
            t[name("newsletter_subscriptions")].insert(),
            [{"id": 1, "email": "ann@example.com", "list_name": "weekly", "subscribed_at": NOW},
             {"id": 2, "email": "ann@example.com", "list_name": "offers", "subscribed_at": NOW},
             {"id": 3, "email": "robin@example.com", "list_name": "weekly", "subscribed_at": NOW}],
        )  # fmt: skip
        connection.execute(
            t[name("chat_messages")].insert(),
            [{"id": 1, "customer_id": 1, "body": "Send it to robin@example.com please", "channel": "web",
              "created_at": NOW}, {"id": 2, "customer_id": 2, "body": "Hi", "channel": "app", "created_at": NOW}],
        )  # fmt: skip
        connection.execute(
            t[name("call_records")].insert(),
            [{"id": 1, "customer_id": 1, "started_at": NOW, "duration_seconds": 60, "phone_number": "+1 555 0101",
              "agent_notes": "Her brother on +1 555 999 0000 called too"}],
        )  # fmt: skip


def _postgres_url():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql")):
        service_missing("PostgreSQL (DATABASE_URL)")
    return make_url(url).set(drivername="postgresql+psycopg")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def company(request, tmp_path_factory):
    previous = os.environ.get(DSN_ENV)
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("company") / "company.sqlite3"
        dsn = f"sqlite:///{path}"
        writer = create_engine(dsn)
        _fill(writer, None)
        made = Company("sqlite", dsn, None, writer)
        server = None
    else:
        base = _postgres_url()
        name = f"dsr_company_{uuid.uuid4().hex[:10]}"
        server = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name)
        writer = create_engine(url)
        with writer.begin() as connection:
            connection.execute(text("CREATE SCHEMA company"))
        _fill(writer, "company")
        made = Company("postgresql", url.render_as_string(hide_password=False), "company", writer)
    os.environ[DSN_ENV] = made.dsn
    try:
        yield made
    finally:
        if previous is None:
            os.environ.pop(DSN_ENV, None)
        else:
            os.environ[DSN_ENV] = previous
        engines_dispose()
        writer.dispose()
        if server is not None:
            with server.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            server.dispose()


@pytest.fixture
def company_map(company, tmp_path, settings):
    """Write a map of the company (optionally changed) and make it the product's DSR_DATAMAP."""

    def write(**kwargs) -> Path:
        path = tmp_path / f"datamap-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(company.datamap(**kwargs))
        settings.DSR_DATAMAP = str(path)
        return path

    return write

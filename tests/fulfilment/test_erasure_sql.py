"""The erasure engine of the `sql` connector, on SQLite and on real PostgreSQL: each strategy, the
order (children before parents, a parent masked where a child stays), the rehearsal that changes
nothing yet reports the database's counts and what it refuses, PlanChanged, a failure half-way
rolled back whole, the verification pass, the keyed hash, injection, and the guard's E006.

Each test gets a small shop of its own (a SQLite file, or a PostgreSQL schema in a database made
for the module), because erasure changes it."""

from __future__ import annotations

import os
import textwrap
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from sqlalchemy import Column, Date, ForeignKey, Integer, MetaData, Table, Text, create_engine, text

from dsr.fulfilment.checks import datamap_guard_messages
from dsr.fulfilment.connectors.base import ConnectorError, ConnectorMisconfigured, PlanChanged, Subject
from dsr.fulfilment.connectors.erasure import FIXED_TEXT, erasure_hash, erasure_verify
from dsr.fulfilment.connectors.sql import SqlConnector, engines_dispose
from dsr.fulfilment.datamap import DataMap, datamap_parse
from tests.fulfilment.company import _postgres_url

DSN_ENV = "DSR_TEST_ERASE_DSN"
ANN = Subject(reference="DSR-TEST", identities={"email": "ann@example.com"}, request_type="erasure")
REFERENCES = ["customer.id -> orders.customer_id", "orders.id -> order_items.order_id"]

ALL_DELETED = """
- name: customer
  identities: {email: email}
  fields: {id: none, email: {category: identifiers, erasure: delete}, name: {category: identifiers, erasure: delete},
           phone: {category: identifiers, erasure: delete}, city: {category: customer_records, erasure: delete},
           born: {category: protected_classifications, erasure: delete}}
- name: orders
  fields: {id: none, customer_id: none, total_cents: {category: commercial_information, erasure: delete},
           invoice_no: {category: commercial_information, erasure: delete}}
- name: order_items
  fields: {id: none, order_id: none, sku: {category: commercial_information, erasure: delete}}
- name: newsletter
  identities: {email: email}
  fields: {id: none, email: {category: identifiers, erasure: delete}, list_name: none}
"""
# The orders stay (tax law) and point at the customer: the customer is masked instead of deleted.
ORDERS_KEPT = ALL_DELETED.replace(
    "total_cents: {category: commercial_information, erasure: delete}",
    'total_cents: {category: commercial_information, erasure: keep, keep_reason: "Tax law: 7 years"}',
).replace(
    "invoice_no: {category: commercial_information, erasure: delete}",
    'invoice_no: {category: commercial_information, erasure: keep, keep_reason: "Tax law: 7 years"}',
)
REWRITTEN = """
- name: customer
  identities: {email: email}
  fields: {id: none, email: {category: identifiers, erasure: hash}, name: {category: identifiers, erasure: fixed},
           phone: {category: identifiers, erasure: random}, city: {category: customer_records, erasure: "null"},
           born: {category: protected_classifications, erasure: fixed}}
- name: orders
  fields: {id: none, customer_id: none, total_cents: {category: commercial_information, erasure: random},
           invoice_no: {category: commercial_information, erasure: fixed, erasure_value: "VOID"}}
- name: order_items
  fields: {id: none, order_id: none, sku: {category: commercial_information, erasure: keep, keep_reason: "Stock"}}
- name: newsletter
  identities: {email: email}
  fields: {id: none, email: {category: identifiers, erasure: hash}, list_name: none}
"""


def shop_create(engine, schema):
    metadata = MetaData(schema=schema)
    prefix = f"{schema}." if schema else ""
    Table(
        "customer", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("email", Text, unique=True), Column("name", Text, nullable=False), Column("phone", Text),
        Column("city", Text), Column("born", Date),
    )  # fmt: skip
    Table(
        "orders", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customer.id"), nullable=False),
        Column("total_cents", Integer), Column("invoice_no", Text),
    )  # fmt: skip
    Table(
        "order_items", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("order_id", Integer, ForeignKey(f"{prefix}orders.id"), nullable=False), Column("sku", Text),
    )  # fmt: skip
    Table(
        "newsletter", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False), Column("email", Text),
        Column("list_name", Text, nullable=False),
    )  # fmt: skip
    # Not in the map: a loyalty table that points at customers (the rehearsal's foreign key).
    Table(
        "loyalty", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customer.id"), nullable=False),
    )  # fmt: skip
    t = metadata.tables
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            t[f"{prefix}customer"].insert(),
            [{"id": 1, "email": "ann@example.com", "name": "Ann", "phone": "+1 555 0101", "city": "Oslo",
              "born": None},
             {"id": 2, "email": "bob@example.com", "name": "Bob", "phone": "+1 555 0102", "city": "Rome",
              "born": None}],
        )  # fmt: skip
        connection.execute(
            t[f"{prefix}orders"].insert(),
            [{"id": 10, "customer_id": 1, "total_cents": 100, "invoice_no": "INV-10"},
             {"id": 11, "customer_id": 1, "total_cents": 200, "invoice_no": "INV-11"},
             {"id": 12, "customer_id": 2, "total_cents": 300, "invoice_no": "INV-12"}],
        )  # fmt: skip
        connection.execute(
            t[f"{prefix}order_items"].insert(),
            [{"id": 100, "order_id": 10, "sku": "A"}, {"id": 101, "order_id": 11, "sku": "B"},
             {"id": 102, "order_id": 12, "sku": "C"}],
        )  # fmt: skip
        connection.execute(
            t[f"{prefix}newsletter"].insert(),
            [{"id": 1, "email": "ann@example.com", "list_name": "weekly"},
             {"id": 2, "email": "bob@example.com", "list_name": "weekly"}],
        )  # fmt: skip


class Shop:
    def __init__(self, backend, dsn, schema, engine):
        self.backend, self.dsn, self.schema, self.engine = backend, dsn, schema, engine

    def table(self, name):
        return f"{self.schema}.{name}" if self.schema else name

    def connector(self, collections=ALL_DELETED, **connection) -> SqlConnector:
        settings = {"dsn_env": DSN_ENV, **({"schema": self.schema} if self.schema else {}), **connection}
        text_map = (
            "systems:\n  - name: shop\n    owner: data@example.com\n    kind: sql\n"
            f"    connection: {settings!r}\n".replace("'", "")
            + "    references:\n"
            + "".join(f"      - {r}\n" for r in REFERENCES)
            + "    collections:\n"
            + textwrap.indent(textwrap.dedent(collections).strip("\n"), "      ")
            + "\n"
        )
        return SqlConnector(datamap_parse(text_map.encode()).system("shop"))

    def rows(self, name):
        with self.engine.connect() as connection:
            result = connection.execute(text(f"SELECT * FROM {self.table(name)} ORDER BY id"))
            return [dict(r) for r in result.mappings()]

    def everything(self):
        return {name: self.rows(name) for name in ("customer", "orders", "order_items", "newsletter", "loyalty")}

    def execute(self, sql, **params):
        with self.engine.begin() as connection:
            connection.execute(text(sql), params)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request):
    if request.param == "sqlite":
        yield ("sqlite", None)
        return
    base = _postgres_url()
    name = f"dsr_erase_{uuid.uuid4().hex[:10]}"
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
def shop(backend, tmp_path):
    kind, url = backend
    previous = os.environ.get(DSN_ENV)
    if kind == "sqlite":
        dsn = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
        engine = create_engine(dsn)
        schema = None
    else:
        dsn = url.render_as_string(hide_password=False)
        engine = create_engine(url)
        schema = f"s_{uuid.uuid4().hex[:8]}"
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    shop_create(engine, schema)
    os.environ[DSN_ENV] = dsn
    try:
        yield Shop(kind, dsn, schema, engine)
    finally:
        if previous is None:
            os.environ.pop(DSN_ENV, None)
        else:
            os.environ[DSN_ENV] = previous
        engines_dispose()
        engine.dispose()


# --- Planning and order ---------------------------------------------------------------------------


def test_deleting_everything_goes_children_first_and_the_rehearsal_changes_nothing(shop):
    before = shop.everything()
    plan = shop.connector().erase_plan(ANN)
    assert shop.everything() == before  # read back: the rehearsal rolled back
    order = [r.collection for r in plan.rows]
    assert order.index("order_items") < order.index("orders") < order.index("customer")
    assert all(r.delete for r in plan.rows)
    assert {r.collection: r.keys for r in plan.rows} == {
        "order_items": (100, 101), "orders": (10, 11), "newsletter": (1,), "customer": (1,),
    }  # fmt: skip
    assert plan.problems == ()
    assert plan.counts == {
        "order_items": {"deleted": 2, "updated": 0, "kept": 0},
        "orders": {"deleted": 2, "updated": 0, "kept": 0},
        "newsletter": {"deleted": 1, "updated": 0, "kept": 0},
        "customer": {"deleted": 1, "updated": 0, "kept": 0},
    }


def test_erase_deletes_the_person_and_nobody_else_and_verifies(shop):
    connector = shop.connector()
    shop.execute(f"DELETE FROM {shop.table('loyalty')}")
    plan = connector.erase_plan(ANN)
    erased = connector.erase(ANN, plan)
    assert erased.counts == {
        "order_items": {"deleted": 2, "updated": 0},
        "orders": {"deleted": 2, "updated": 0},
        "newsletter": {"deleted": 1, "updated": 0},
        "customer": {"deleted": 1, "updated": 0},
    }
    assert [r["id"] for r in shop.rows("customer")] == [2]
    assert [r["id"] for r in shop.rows("orders")] == [12]
    assert [r["id"] for r in shop.rows("order_items")] == [102]
    assert [r["email"] for r in shop.rows("newsletter")] == ["bob@example.com"]
    assert erasure_verify(connector, ANN, plan) == []


def test_verification_fails_when_the_rows_are_still_there(shop):
    connector = shop.connector()
    plan = connector.erase_plan(ANN)  # planned, never run
    problems = erasure_verify(connector, ANN, plan)
    assert "shop.customer: row 1 was to be deleted and is still found" in problems
    assert len(problems) == 6


def test_a_parent_whose_children_stay_is_masked_instead_of_deleted(shop):
    connector = shop.connector(ORDERS_KEPT)
    shop.execute(f"DELETE FROM {shop.table('loyalty')}")
    plan = connector.erase_plan(ANN)
    rows = {r.collection: r for r in plan.rows}
    assert rows["order_items"].delete and not rows["orders"].delete
    customer = rows["customer"]
    assert not customer.delete and "masked instead of deleted" in customer.note and "orders" in customer.note
    # name is NOT NULL: nulling it (what a mask does with a `delete` field) is refused at planning.
    # (The rehearsal's statement fails on it too, and says so.)
    assert plan.problems[0] == "shop.customer.name: erasure 'delete' sets NULL, but the column is NOT NULL"
    assert all(p.startswith("shop.customer.name: ") for p in plan.problems)
    assert rows["orders"].kept == (("invoice_no", "Tax law: 7 years"), ("total_cents", "Tax law: 7 years"))
    with pytest.raises(ConnectorMisconfigured, match="the plan has problems"):
        connector.erase(ANN, plan)
    assert [r["email"] for r in shop.rows("customer")] == ["ann@example.com", "bob@example.com"]


def test_a_masked_parent_keeps_its_key_and_the_orders_still_point_at_it(shop):
    collections = ORDERS_KEPT.replace(
        "name: {category: identifiers, erasure: delete}", "name: {category: identifiers, erasure: fixed}"
    )
    connector = shop.connector(collections)
    plan = connector.erase_plan(ANN)
    assert plan.problems == ()
    assert plan.counts["customer"] == {"deleted": 0, "updated": 1, "kept": 1}
    erased = connector.erase(ANN, plan)
    ann = shop.rows("customer")[0]
    assert ann["id"] == 1 and ann["email"] is None and ann["phone"] is None and ann["name"] == FIXED_TEXT
    assert [(o["id"], o["customer_id"], o["invoice_no"]) for o in shop.rows("orders")][:2] == [
        (10, 1, "INV-10"), (11, 1, "INV-11"),
    ]  # fmt: skip
    assert [i["id"] for i in shop.rows("order_items")] == [102]
    # born was NULL already: the database reports no change to it, and none is recorded.
    assert erased.fields == {"customer.email": 1, "customer.name": 1, "customer.phone": 1, "customer.city": 1}
    assert erasure_verify(connector, ANN, plan) == []  # the masked row cannot be found by the email


def test_each_rewriting_strategy_and_the_keyed_hash_joins(shop, settings):
    connector = shop.connector(REWRITTEN)
    shop.execute(f"UPDATE {shop.table('customer')} SET born = :born WHERE id = 1", born="1980-01-02")
    plan = connector.erase_plan(ANN)
    assert plan.problems == ()
    assert all(not r.delete for r in plan.rows)
    erased = connector.erase(ANN, plan)
    ann, bob = shop.rows("customer")
    assert ann["email"] == erasure_hash("ann@example.com") and len(ann["email"]) == 64
    assert ann["name"] == FIXED_TEXT and ann["city"] is None
    assert ann["phone"] != "+1 555 0101" and len(ann["phone"]) == 32
    assert str(ann["born"]) == "1970-01-01"
    assert bob == {"id": 2, "email": "bob@example.com", "name": "Bob", "phone": "+1 555 0102", "city": "Rome",
                   "born": None}  # fmt: skip
    orders = shop.rows("orders")
    assert [o["invoice_no"] for o in orders] == ["VOID", "VOID", "INV-12"]
    assert orders[2]["total_cents"] == 300
    assert [i["sku"] for i in shop.rows("order_items")] == ["A", "B", "C"]  # kept
    # The same address hashes the same in both tables: a join still works, the address is gone.
    with shop.engine.connect() as connection:
        joined = connection.execute(
            text(
                f"SELECT n.id FROM {shop.table('newsletter')} n JOIN {shop.table('customer')} c "
                "ON c.email = n.email ORDER BY n.id"
            )
        ).all()
    assert [row[0] for row in joined] == [1, 2]
    assert erased.counts["customer"] == {"deleted": 0, "updated": 1}
    assert erased.fields["newsletter.email"] == 1 and erased.fields["orders.invoice_no"] == 2
    # Stable: the same key gives the same hash; another key another.
    assert erasure_hash("ann@example.com") == erasure_hash("ann@example.com")
    settings.DSR_ERASURE_HASH_KEY = "another key"
    assert erasure_hash("ann@example.com") != ann["email"]
    assert erasure_verify(connector, ANN, plan) == []


def test_hash_without_a_key_refuses(shop, settings):
    settings.DSR_ERASURE_HASH_KEY = ""
    before = shop.everything()
    with pytest.raises(ConnectorMisconfigured, match="DSR_ERASURE_HASH_KEY"):
        shop.connector(REWRITTEN).erase_plan(ANN)
    assert shop.everything() == before


def test_a_personal_field_without_a_strategy_and_a_kept_identity_are_problems(shop):
    collections = ALL_DELETED.replace(
        "email: {category: identifiers, erasure: delete}, list_name",
        'email: {category: identifiers, erasure: keep, keep_reason: "x"}, list_name',
    ).replace("born: {category: protected_classifications, erasure: delete}", "born: protected_classifications")
    # customer still has `delete` fields: deleted whole (born goes with the row). newsletter keeps its identity.
    plan = shop.connector(collections.replace("list_name: none", "list_name: commercial_information")).erase_plan(ANN)
    assert "no erasure strategy in the map for shop.newsletter.list_name" in plan.problems
    assert any(p.startswith("shop.newsletter.email: an identity kept while the row stays") for p in plan.problems)


# --- The rehearsal finds what the database refuses ------------------------------------------------------


def test_the_rehearsal_reports_a_foreign_key_the_map_does_not_know(shop):
    shop.execute(f"INSERT INTO {shop.table('loyalty')} (id, customer_id) VALUES (1, 1)")
    before = shop.everything()
    plan = shop.connector().erase_plan(ANN)
    assert len(plan.problems) == 1
    assert plan.problems[0].startswith("shop.customer: deleting its rows breaks a constraint")
    # The other collections' counts are still the database's.
    assert plan.counts["orders"]["deleted"] == 2
    assert shop.everything() == before


def test_unique_and_not_null_strategies_are_refused_at_planning(shop):
    collections = REWRITTEN.replace(
        "email: {category: identifiers, erasure: hash}, name", "email: {category: identifiers, erasure: fixed}, name"
    ).replace("name: {category: identifiers, erasure: fixed}", 'name: {category: identifiers, erasure: "null"}')
    plan = shop.connector(collections).erase_plan(ANN)
    assert (
        "shop.customer.email: erasure 'fixed' writes one value into a unique column (use random or hash)"
        in plan.problems
    )
    assert "shop.customer.name: erasure 'null' sets NULL, but the column is NOT NULL" in plan.problems


# --- Execution -------------------------------------------------------------------------------------------


def test_a_row_added_after_planning_raises_plan_changed_and_changes_nothing(shop):
    connector = shop.connector()
    shop.execute(f"DELETE FROM {shop.table('loyalty')}")
    plan = connector.erase_plan(ANN)
    shop.execute(f"INSERT INTO {shop.table('orders')} (id, customer_id, total_cents) VALUES (13, 1, 5)")
    before = shop.everything()
    with pytest.raises(PlanChanged):
        connector.erase(ANN, plan)
    assert shop.everything() == before


def test_a_failure_half_way_leaves_the_system_exactly_as_before(shop):
    connector = shop.connector()
    shop.execute(f"DELETE FROM {shop.table('loyalty')}")
    plan = connector.erase_plan(ANN)
    # The customer is the last collection: items, orders and the newsletter are deleted first.
    if shop.backend == "sqlite":
        shop.execute("CREATE TRIGGER customer_keep BEFORE DELETE ON customer BEGIN SELECT RAISE(ABORT, 'refused'); END")
    else:
        shop.execute(
            f"CREATE FUNCTION {shop.schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
        )
        shop.execute(
            f"CREATE TRIGGER customer_keep BEFORE DELETE ON {shop.table('customer')} "
            f"FOR EACH ROW EXECUTE FUNCTION {shop.schema}.refuse()"
        )
    before = shop.everything()
    with pytest.raises(ConnectorError, match="shop.customer"):
        connector.erase(ANN, plan)
    assert shop.everything() == before
    assert len(before["order_items"]) == 3


def test_injection_is_only_ever_a_value(shop):
    evil = "x'); delete from customer; --"
    shop.execute(f"UPDATE {shop.table('customer')} SET email = :e WHERE id = 2", e=evil)
    shop.execute(f"DELETE FROM {shop.table('loyalty')}")
    connector = shop.connector(REWRITTEN)
    nobody = Subject(reference="DSR-TEST", identities={"email": "' OR '1'='1"})
    assert connector.erase_plan(nobody).rows == ()
    bob = Subject(reference="DSR-TEST", identities={"email": evil})
    plan = connector.erase_plan(bob)
    connector.erase(bob, plan)
    rows = shop.rows("customer")
    assert len(rows) == 2 and rows[0]["email"] == "ann@example.com"
    assert rows[1]["email"] == erasure_hash(evil)


# --- The writing DSN and the guard ------------------------------------------------------------------------


def test_the_writing_dsn_is_its_own_setting(shop):
    connector = shop.connector(erase_dsn_env="DSR_TEST_ERASE_WRITER_DSN")
    os.environ.pop("DSR_TEST_ERASE_WRITER_DSN", None)
    with pytest.raises(ConnectorMisconfigured, match="DSR_TEST_ERASE_WRITER_DSN"):
        connector.erase_plan(ANN)
    os.environ["DSR_TEST_ERASE_WRITER_DSN"] = shop.dsn
    try:
        assert connector.erase_plan(ANN).rows
    finally:
        os.environ.pop("DSR_TEST_ERASE_WRITER_DSN", None)


def test_the_guard_refuses_a_strategy_the_column_cannot_take(shop):
    collections = REWRITTEN.replace(
        "email: {category: identifiers, erasure: hash}, name", "email: {category: identifiers, erasure: fixed}, name"
    ).replace("name: {category: identifiers, erasure: fixed}", 'name: {category: identifiers, erasure: "null"}')
    connector = shop.connector(collections)
    messages = [m for m in datamap_guard_messages_for(connector) if m.id == "datamap.E006"]
    assert len(messages) == 2
    assert any("customer.email" in m.msg and "unique" in m.msg for m in messages)
    assert any("customer.name" in m.msg and "NOT NULL" in m.msg for m in messages)
    assert [m for m in datamap_guard_messages_for(shop.connector(REWRITTEN)) if m.id == "datamap.E006"] == []


def datamap_guard_messages_for(connector):
    return datamap_guard_messages(DataMap(path="map.yaml", version="x", systems=(connector.system,)))


def test_manage_py_check_and_dsr_datamap_check_fail_on_it(shop, settings, tmp_path):
    bad = REWRITTEN.replace(
        "name: {category: identifiers, erasure: fixed}", 'name: {category: identifiers, erasure: "null"}'
    )
    system = shop.connector(bad).system
    path = tmp_path / "datamap.yaml"
    settings_line = f"{{dsn_env: {DSN_ENV}{', schema: ' + shop.schema if shop.schema else ''}}}"
    path.write_text(
        "systems:\n  - name: shop\n    owner: data@example.com\n    kind: sql\n"
        f"    connection: {settings_line}\n    references:\n"
        + "".join(f"      - {r}\n" for r in REFERENCES)
        + "    collections:\n"
        + textwrap.indent(textwrap.dedent(bad).strip("\n"), "      ")
        + "\n"
    )
    assert system.collection("customer").field("name").erasure == "null"
    settings.DSR_DATAMAP = str(path)
    with pytest.raises(SystemCheckError, match=r"datamap.E006.*shop.customer.name: erasure 'null' sets NULL"):
        call_command("check")
    with pytest.raises(SystemCheckError, match="datamap.E006"):
        call_command("dsr_datamap", "check", "--offline", skip_checks=False)

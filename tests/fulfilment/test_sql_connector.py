"""The `sql` connector against a company database (tests/fulfilment/company.py), on SQLite and on
real PostgreSQL: the graph from the email, one query per collection and per batch of keys,
streaming, ambiguity, injection, the read-only snapshot, the statement timeout, health, and a
search end to end."""

import json
import math
import os
import re
import tracemalloc
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from dsr.fulfilment.connectors.base import AmbiguousIdentity, ConnectorError, ConnectorMisconfigured
from dsr.fulfilment.connectors.sql import PAGE_ROWS, SqlConnector
from dsr.fulfilment.datamap import datamap_parse
from dsr.fulfilment.models import RunState, SystemRun, SystemStatus
from dsr.fulfilment.results import result_records
from dsr.fulfilment.services import runs
from dsr.fulfilment.services.health import system_health
from dsr.services.audit import Actor
from tests.fulfilment import company as company_db
from tests.fulfilment.company import DSN_ENV, MANY_ORDERS, subject
from tests.fulfilment.conftest import verified_request
from tests.support.services import free_port

# The fixtures (a module-scoped company database per backend, and a map of it).
company = company_db.company
company_map = company_db.company_map
TABLES = ("customer", "orders", "order_items", "newsletter_subscriptions", "chat_messages", "call_records")


class ListSink:
    def __init__(self):
        self.records: list[tuple[str, dict]] = []

    def write(self, collection, record):
        self.records.append((collection, record))

    def of(self, collection):
        return [r for c, r in self.records if c == collection]


class CountingSink:
    """Keeps nothing but counts: what a streamed export must manage with."""

    def __init__(self):
        self.rows = 0
        self.address_bytes = 0

    def write(self, collection, record):
        self.rows += 1
        self.address_bytes += len(record.get("shipping_address") or "")


def connector_of(company, **kwargs) -> SqlConnector:
    return SqlConnector(datamap_parse(company.datamap(**kwargs).encode()).system("company"))


@contextmanager
def statements(connector):
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = connector.engine()
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def selects(seen, table):
    pattern = re.compile(rf"\bFROM\s+(company\.)?{table}\b")
    return [s for s in seen if s.lstrip().upper().startswith("SELECT") and pattern.search(s)]


def test_the_graph_is_followed_from_the_email_and_only_mapped_fields_are_read(company):
    connector = connector_of(company)
    sink = ListSink()
    exported = connector.export(subject("  Ann@Example.COM "), sink)  # stored and compared in lower case
    assert exported.counts == {"customer": 1, "orders": 3, "order_items": 3, "newsletter_subscriptions": 2,
                               "chat_messages": 1, "call_records": 1}  # fmt: skip
    assert [r["id"] for r in sink.of("customer")] == [1]
    assert sorted(r["id"] for r in sink.of("orders")) == [1, 2, 3]
    assert sorted(r["sku"] for r in sink.of("order_items")) == ["A", "B", "C"]
    assert sorted(r["list_name"] for r in sink.of("newsletter_subscriptions")) == ["offers", "weekly"]
    system = connector.system
    for collection, record in sink.records:
        assert tuple(record) == system.collection(collection).field_names
    found = connector.find(subject("ann@example.com"))
    assert {name: sorted(keys) for name, keys in found.keys.items()} == {
        "customer": [1], "orders": [1, 2, 3], "order_items": [1, 2, 3], "newsletter_subscriptions": [1, 2],
        "chat_messages": [1], "call_records": [1],
    }  # fmt: skip


def test_a_newsletter_is_found_by_email_alone(company):
    found = connector_of(company).find(subject("robin@example.com"))
    assert found.keys["newsletter_subscriptions"] == [3]
    assert found.total == 1


def test_one_query_per_collection_never_one_per_row(company):
    connector = connector_of(company)
    connector.export(subject("bob@example.com"), ListSink())  # reflects the tables once per process
    with statements(connector) as seen:
        connector.export(subject("ann@example.com"), ListSink())
    assert {table: len(selects(seen, table)) for table in TABLES} == dict.fromkeys(TABLES, 1)
    assert not any("ann@example.com" in s for s in seen)  # the value is a parameter, never in the SQL


def test_keys_are_batched_one_query_per_batch(company):
    connector = connector_of(company)
    connector.batch = 2
    with statements(connector) as seen:
        exported = connector.export(subject("ann@example.com"), ListSink())
    assert exported.counts["order_items"] == 3
    assert len(selects(seen, "order_items")) == math.ceil(3 / 2)

    connector = connector_of(company)
    connector.page_rows = MANY_ORDERS + 1  # one page: count only the batches
    with statements(connector) as seen:
        exported = connector.export(subject("many@example.com"), CountingSink())
    assert exported.counts["orders"] == exported.counts["order_items"] == MANY_ORDERS
    assert len(selects(seen, "orders")) == 1
    assert len(selects(seen, "order_items")) == math.ceil(MANY_ORDERS / connector.batch) == 11


def _peak_memory(connector, sink):
    tracemalloc.start()
    try:
        with statements(connector) as seen:
            exported = connector.export(subject("many@example.com"), sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return exported, peak, seen


def test_ten_thousand_rows_stream_through_the_sink_without_sitting_in_memory(company):
    connector = connector_of(company)
    connector.page_rows = 500
    connector.export(subject("bob@example.com"), CountingSink())  # warm: reflection, pool
    sink = CountingSink()
    exported, streamed_peak, seen = _peak_memory(connector, sink)
    assert exported.counts["orders"] == MANY_ORDERS and sink.rows == 2 * MANY_ORDERS + 1
    assert sink.address_bytes > 4_000_000
    assert len(selects(seen, "orders")) == 2  # a first page, then the rest through a streamed cursor
    # The same rows held in a list, for scale: streaming holds a small part of it at any moment.
    _, held_peak, _ = _peak_memory(connector, ListSink())
    assert streamed_peak * 3 < held_peak, (streamed_peak, held_peak)
    assert PAGE_ROWS >= 1000  # the default page keeps a normal person to one query


def test_two_people_with_one_email_stop_the_system_before_anything_is_written(company):
    connector = connector_of(company)
    sink = ListSink()
    with pytest.raises(AmbiguousIdentity) as raised:
        connector.export(subject("twin@example.com"), sink)
    assert "2 records in company.customer" in str(raised.value)
    assert "twin@example.com" not in str(raised.value)
    assert raised.value.retry is False
    assert sink.records == []
    with pytest.raises(AmbiguousIdentity):
        connector.find(subject("twin@example.com"))


@pytest.mark.parametrize(
    "typed", ["x' OR '1'='1", "ann@example.com' OR '1'='1", "'; DROP TABLE customer; --", "ann@example.com\x00"]
)
def test_a_typed_value_is_never_sql(company, typed):
    connector = connector_of(company)
    try:
        found = connector.find(subject(typed))
    except ConnectorError as refused:  # PostgreSQL refuses a NUL in text: an error, never a match
        assert "\x00" in typed, refused
    else:
        assert found.total == 0
    assert company.count("customer") == 5
    assert company.count("orders") == 4 + MANY_ORDERS


def test_nobody_found_answers_every_collection_empty(company):
    connector = connector_of(company)
    found = connector.find(subject("nobody@example.com"))
    assert found.keys == {name: [] for name in TABLES}
    exported = connector.export(subject("nobody@example.com"), ListSink())
    assert exported.counts == dict.fromkeys(TABLES, 0)


def test_the_search_transaction_refuses_to_write(company):
    connector = connector_of(company)
    with pytest.raises(DBAPIError) as refused:
        with connector.snapshot() as connection:
            connection.execute(text(f"UPDATE {company.table('customer')} SET name = 'changed' WHERE id = 1"))
    if company.backend == "postgresql":
        assert refused.value.orig.sqlstate == "25006"  # read_only_sql_transaction
        with connector.snapshot() as connection:
            isolation = connection.execute(text("SHOW transaction_isolation")).scalar_one()
            timeout = connection.execute(text("SHOW statement_timeout")).scalar_one()
        assert (isolation, timeout) == ("repeatable read", "5s")
    else:
        assert "readonly" in str(refused.value.orig)
    with company.writer.connect() as connection:
        assert connection.execute(text(f"SELECT name FROM {company.table('customer')} WHERE id = 1")).scalar_one() == (
            "Ann Example"
        )


@pytest.mark.postgres
def test_a_slow_query_times_out_visibly_and_may_be_retried(company):
    if company.backend != "postgresql":
        pytest.skip("statement timeouts are PostgreSQL's (and MySQL's)")
    with company.writer.begin() as connection:
        connection.execute(
            text(
                "CREATE VIEW company.slow_customer AS SELECT c.id, c.email FROM company.customer c "
                "CROSS JOIN LATERAL (SELECT pg_sleep(0.5)) s"
            )
        )
    try:
        collections = """
          - name: customer
            table: slow_customer
            identities: {email: email}
            fields: {id: none, email: identifiers}
        """
        connector = connector_of(company, timeout_ms=50, collections=collections, references=[])
        with pytest.raises(ConnectorError) as raised:
            connector.export(subject("ann@example.com"), ListSink())
        assert str(raised.value) == "company.customer timed out after 50 ms"
        assert raised.value.retry is True
        assert connector_of(company).health().ok  # the pool is fine afterwards
    finally:
        with company.writer.begin() as connection:
            connection.execute(text("DROP VIEW company.slow_customer"))


def test_health_connects_and_finds_every_mapped_table(company):
    health = connector_of(company).health()
    assert health.ok and health.detail == "6 tables found"
    assert health.latency_ms is not None and health.latency_ms > 0
    ghost = """
      - name: customer
        identities: {email: email}
        fields: {id: none, email: identifiers}
      - name: ghosts
        identities: {email: email}
        fields: {id: none, email: identifiers}
    """
    health = connector_of(company, collections=ghost, references=[]).health()
    assert not health.ok and re.search(r"table '(company\.)?ghosts' does not exist", health.detail)


def test_a_missing_table_or_column_is_a_misconfiguration_naming_it(company):
    ghost = """
      - name: customer
        identities: {email: email}
        fields: {id: none, email: identifiers, nickname: identifiers}
    """
    with pytest.raises(ConnectorMisconfigured) as raised:
        connector_of(company, collections=ghost, references=[]).export(subject("ann@example.com"), ListSink())
    assert "has no column 'nickname'" in str(raised.value) and raised.value.retry is False
    ghost = """
      - name: customer
        table: clients
        identities: {email: email}
        fields: {id: none, email: identifiers}
    """
    with pytest.raises(ConnectorMisconfigured, match="table 'clients' does not exist"):
        connector_of(company, collections=ghost, references=[]).find(subject("ann@example.com"))


def test_the_dsn_variable_must_be_set_and_is_never_printed(company, monkeypatch):
    connector = connector_of(company)
    monkeypatch.delenv(DSN_ENV)
    with pytest.raises(ConnectorMisconfigured, match=f"{DSN_ENV} that names its database is not set"):
        connector.export(subject("ann@example.com"), ListSink())
    health = system_health(connector.system)
    assert not health.ok and DSN_ENV in health.detail


def test_an_unreachable_database_fails_with_retry_and_no_password(monkeypatch):
    system = datamap_parse(
        b"systems:\n- name: far\n  owner: a@example.com\n  kind: sql\n  connection: {dsn_env: FAR_DSN}\n"
        b"  collections:\n  - name: customer\n    identities: {email: email}\n    fields: {id: none, email: identifiers}\n"
    ).system("far")
    monkeypatch.setenv("FAR_DSN", f"postgresql+psycopg://reader:s3cret-pw@127.0.0.1:{free_port()}/shop")
    connector = SqlConnector(system)
    with pytest.raises(ConnectorError) as raised:
        connector.find(subject("ann@example.com"))
    assert raised.value.retry is True and "cannot connect" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)
    health = system_health(system)
    assert not health.ok and "s3cret-pw" not in health.detail
    monkeypatch.setenv("FAR_DSN", "sqlite:////nonexistent/dir/shop.sqlite3")
    with pytest.raises(ConnectorError, match="the SQLite database that FAR_DSN names does not exist"):
        connector.health()
    monkeypatch.setenv("FAR_DSN", "not a url")
    with pytest.raises(ConnectorMisconfigured, match="FAR_DSN does not hold a database URL"):
        connector.health()


def test_a_verified_request_is_searched_end_to_end(
    company, company_map, officer, django_capture_on_commit_callbacks, monkeypatch
):
    company_map()
    packaged = []  # the package is built by its own task (tested with the package)
    monkeypatch.setitem(runs._queue, "package", lambda pk, countdown=0: packaged.append(pk))
    request = verified_request(officer=officer, email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=request, actor=Actor.staff(officer))
    system_run = SystemRun.objects.get(run=run, system="company")
    assert system_run.status == SystemStatus.DONE, system_run.error
    # CCPA: the order 500 days old is outside the 12 months the form recorded.
    assert system_run.counts == {"customer": 1, "orders": 2, "order_items": 3, "newsletter_subscriptions": 2,
                                 "chat_messages": 1, "call_records": 1}  # fmt: skip
    assert system_run.records == 10
    run.refresh_from_db()
    assert run.state == RunState.DONE and packaged == [run.pk]
    held = list(result_records(system_run.result_name))
    assert len(held) == 10
    chats = [r for c, r in held if c == "chat_messages"]
    assert chats == [{"id": 1, "customer_id": 1, "body": "Send it to [redacted] please", "channel": "web",
                      "created_at": chats[0]["created_at"]}]  # fmt: skip
    assert "T" in chats[0]["created_at"]  # ISO dates on every dialect


def test_a_column_added_after_the_tables_were_read_is_found_once_mapped(company):
    connector_of(company).find(subject("ann@example.com"))  # the tables are reflected (and kept)
    customer = company.table("customer")
    with company.writer.begin() as connection:
        connection.execute(text(f"ALTER TABLE {customer} ADD COLUMN loyalty_tier TEXT"))
        connection.execute(text(f"UPDATE {customer} SET loyalty_tier = 'gold' WHERE id = 1"))
    try:
        collections = company_db.FIELDS.replace("created_at: none}", "created_at: none, loyalty_tier: inferences}")
        sink = ListSink()
        connector_of(company, collections=collections).export(subject("ann@example.com"), sink)
        assert sink.of("customer")[0]["loyalty_tier"] == "gold"
    finally:
        with company.writer.begin() as connection:
            connection.execute(text(f"ALTER TABLE {customer} DROP COLUMN loyalty_tier"))


def test_a_record_reached_by_identity_and_by_reference_is_read_once(company):
    collections = company_db.FIELDS.replace(
        "  - name: chat_messages\n", "  - name: chat_messages\n    identities: {customer_number: customer_id}\n"
    )
    connector = connector_of(company, collections=collections)
    exported = connector.export(subject("ann@example.com", customer_number="1"), ListSink())
    assert exported.counts["chat_messages"] == 1  # found by customer number and through customer.id


@pytest.mark.postgres
def test_a_forked_worker_opens_its_own_connections_never_the_parents(company):
    """Celery's prefork pool forks its children after the system checks (the data map guard)
    inspected the systems in the parent: a child must not reuse the parent's pooled connection
    (two processes on one socket corrupt both sessions)."""
    if company.backend != "postgresql":
        pytest.skip("the pooled socket shared across a fork is a server connection")
    connector = connector_of(company)

    def backend_pid() -> int:
        with connector.snapshot() as connection:
            return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

    parent_pid = backend_pid()  # the pool now holds this connection
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        try:
            sink = CountingSink()
            connector.export(subject("ann@example.com"), sink)
            os.write(write, json.dumps({"pid": backend_pid(), "rows": sink.rows}).encode())
        except BaseException as error:
            os.write(write, json.dumps({"error": repr(error)}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = json.loads(pipe.read())
    os.waitpid(child, 0)
    assert "error" not in answer, answer
    assert answer["rows"] > 0 and answer["pid"] != parent_pid
    assert backend_pid() == parent_pid  # the parent's session is intact and still its own


@pytest.mark.postgres
def test_a_pooled_connection_the_database_dropped_is_replaced_and_the_search_goes_on(company):
    """No pre-ping round trip on every search: a pooled connection found dead (the database
    restarted, an idle timeout) is replaced and the search tried again at once, nothing lost."""
    if company.backend != "postgresql":
        pytest.skip("a server connection to drop")
    connector = connector_of(company)
    first = CountingSink()
    connector.export(subject("ann@example.com"), first)
    with connector.snapshot() as connection:
        pooled = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with company.writer.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled}).scalar_one()
    again = CountingSink()
    connector.export(subject("ann@example.com"), again)
    assert again.rows == first.rows > 0
    with connector.snapshot() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != pooled
        assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "5s"

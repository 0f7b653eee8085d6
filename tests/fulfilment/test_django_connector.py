"""The `django` connector against the test-only shop app (tests/support/shop): the same search as
`sql` — the graph from the email, one ORM query per collection and per batch, ambiguity, typed
values as parameters, health — on the product's own database, and a search end to end."""

import math
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from dsr.fulfilment.connectors.base import AmbiguousIdentity, ConnectorMisconfigured, Subject
from dsr.fulfilment.connectors.django_models import DjangoConnector
from dsr.fulfilment.datamap import datamap_parse
from dsr.fulfilment.models import RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import runs
from dsr.services.audit import Actor
from tests.fulfilment.conftest import verified_request
from tests.support.shop.models import Customer, Order, Ticket

NOW = datetime.now(UTC).replace(microsecond=0)

MAP = textwrap.dedent(
    """
    systems:
      - name: accounts
        owner: accounts@example.com
        kind: django
        references:
          - customer.id -> orders.customer_id
          - customer.id -> tickets.customer_id
          - orders.id -> order_tickets.order_id
        collections:
          - name: customer
            model: shop.Customer
            identities: {email: email}
            fields: {id: none, email: identifiers, name: identifiers, phone: identifiers, created_at: none}
          - name: orders
            model: shop.Order
            dated_by: ordered_at
            fields: {id: none, customer_id: none, ordered_at: commercial_information,
                     status: commercial_information, total_cents: commercial_information}
          - name: tickets
            model: shop.Ticket
            dated_by: opened_at
            fields: {id: none, customer_id: none, order_id: none, opened_at: customer_records,
                     body: {category: customer_records, others_data: true}}
          - name: order_tickets
            model: shop.Ticket
            fields: {id: none, customer_id: none, order_id: none, opened_at: customer_records,
                     body: {category: customer_records, others_data: true}}
    """
)
COLLECTIONS = ("customer", "orders", "tickets", "order_tickets")


def connector(text: str = MAP) -> DjangoConnector:
    return DjangoConnector(datamap_parse(text.encode()).systems[0])


def subject(email: str) -> Subject:
    return Subject(reference="DSR-TEST", identities={"email": email})


class ListSink:
    def __init__(self):
        self.records = []

    def write(self, collection, record):
        self.records.append((collection, record))


@pytest.fixture
def shop(db):
    ann = Customer.objects.create(email="ann@example.com", name="Ann", phone="+1 555 0101", created_at=NOW)
    Customer.objects.create(email="bob@example.com", name="Bob", created_at=NOW)
    Customer.objects.create(email="twin@example.com", name="Twin One", created_at=NOW)
    Customer.objects.create(email="twin@example.com", name="Twin Two", created_at=NOW)
    orders = [
        Order.objects.create(customer=ann, ordered_at=NOW - timedelta(days=d), status="placed", total_cents=d)
        for d in (1, 2, 3, 4, 500)
    ]
    for order in orders:
        Ticket.objects.create(customer=ann, order=order, opened_at=NOW, body=f"About order {order.pk}")
    Ticket.objects.create(customer=ann, opened_at=NOW, body="Please also write to robin@example.com")
    return {"ann": ann, "orders": orders}


def shop_selects(queries, table):
    # PostgreSQL streams .iterator() through a server-side cursor: DECLARE … CURSOR FOR SELECT …
    return [q["sql"] for q in queries if q["sql"].startswith(("SELECT", "DECLARE")) and f'FROM "{table}"' in q["sql"]]


def test_the_graph_is_followed_from_the_email(shop):
    sink = ListSink()
    exported = connector().export(subject(" ANN@example.com"), sink)
    assert exported.counts == {"customer": 1, "orders": 5, "tickets": 6, "order_tickets": 5}
    first = next(r for c, r in sink.records if c == "customer")
    assert first == {"id": shop["ann"].pk, "email": "ann@example.com", "name": "Ann", "phone": "+1 555 0101",
                     "created_at": NOW}  # fmt: skip
    found = connector().find(subject("ann@example.com"))
    assert sorted(found.keys["orders"]) == sorted(o.pk for o in shop["orders"])


def test_one_query_per_collection_and_per_batch(shop):
    with CaptureQueriesContext(connection) as captured:
        connector().export(subject("ann@example.com"), ListSink())
    assert len(shop_selects(captured.captured_queries, "shop_customer")) == 1
    assert len(shop_selects(captured.captured_queries, "shop_order")) == 1
    assert len(shop_selects(captured.captured_queries, "shop_ticket")) == 2  # tickets, order_tickets
    assert not any("ann@example.com" in q["sql"] for q in captured.captured_queries if "%s" in q["sql"])

    batched = connector()
    batched.batch = 2
    with CaptureQueriesContext(connection) as captured:
        exported = batched.export(subject("ann@example.com"), ListSink())
    assert exported.counts["order_tickets"] == 5
    # tickets by customer (one key) once, order_tickets by the five orders' keys in batches of two
    assert len(shop_selects(captured.captured_queries, "shop_ticket")) == 1 + math.ceil(5 / 2)


def test_two_people_with_one_email_stop_the_system(shop):
    sink = ListSink()
    with pytest.raises(AmbiguousIdentity, match="2 records in accounts.customer"):
        connector().export(subject("twin@example.com"), sink)
    assert sink.records == []


@pytest.mark.parametrize("typed", ["x' OR '1'='1", "ann@example.com' OR 1=1 --", "%", "_%@example.com"])
def test_a_typed_value_is_never_sql_nor_a_pattern(shop, typed):
    found = connector().find(subject(typed))
    assert found.total == 0
    assert Customer.objects.count() == 4


def test_nobody_found_answers_every_collection_empty(shop):
    assert connector().find(subject("nobody@example.com")).keys == {name: [] for name in COLLECTIONS}
    assert connector().export(subject("nobody@example.com"), ListSink()).counts == dict.fromkeys(COLLECTIONS, 0)


def test_health_and_misconfiguration_name_the_model_and_field(db):
    health = connector().health()
    assert health.ok and health.detail == "4 models found" and health.latency_ms is not None
    ghost = MAP.replace("model: shop.Order", "model: shop.Ghost")
    health = connector(ghost).health()
    assert not health.ok and "no model 'shop.Ghost' is installed" in health.detail
    with pytest.raises(ConnectorMisconfigured, match="no model 'shop.Ghost' is installed"):
        connector(ghost).export(subject("ann@example.com"), ListSink())
    typo = MAP.replace("name: identifiers, phone", "nickname: identifiers, phone")
    with pytest.raises(ConnectorMisconfigured, match="model shop.Customer has no field 'nickname'"):
        connector(typo).find(subject("ann@example.com"))
    elsewhere = MAP.replace("kind: django", "kind: django\n    connection: {database: reporting}")
    with pytest.raises(ConnectorMisconfigured, match="no database 'reporting' in DATABASES"):
        connector(elsewhere).find(subject("ann@example.com"))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_search_is_a_read_only_snapshot():
    Customer.objects.create(email="ann@example.com", name="Ann", created_at=NOW)
    with pytest.raises(DatabaseError, match="read-only transaction"):
        with connector().snapshot():
            Customer.objects.create(email="intruder@example.com", name="Nobody", created_at=NOW)
    assert list(Customer.objects.values_list("email", flat=True)) == ["ann@example.com"]


def test_a_verified_request_is_searched_end_to_end(
    shop, officer, settings, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    path = tmp_path / "datamap.yaml"
    path.write_text(MAP)
    settings.DSR_DATAMAP = str(path)
    packaged = []
    monkeypatch.setitem(runs._queue, "package", lambda pk, countdown=0: packaged.append(pk))
    request = verified_request(officer=officer, email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=request, actor=Actor.staff(officer))
    system_run = SystemRun.objects.get(run=run, system="accounts")
    assert system_run.status == SystemStatus.DONE, system_run.error
    # CCPA, 12 months: the order 500 days old is left out; the tickets are dated today.
    assert system_run.counts == {"customer": 1, "orders": 4, "tickets": 6, "order_tickets": 5}
    run.refresh_from_db()
    assert run.state == RunState.DONE and packaged == [run.pk]

"""The erasure engine of the `django` connector on the product's own database (SQLite, and
PostgreSQL under DATABASE_URL), against the test-only shop app: deletion through the ORM without
Django's cascade (refused when rows outside the plan point at the person's), the rewriting
strategies, the rehearsal that rolls back, PlanChanged, a failure half-way rolled back whole, the
verification pass and the guard's datamap.E006."""

import textwrap
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError

from dsr.fulfilment.checks import datamap_guard_messages
from dsr.fulfilment.connectors.base import ConnectorError, ConnectorMisconfigured, PlanChanged, Subject
from dsr.fulfilment.connectors.django_models import DjangoConnector
from dsr.fulfilment.connectors.erasure import FIXED_TEXT, erasure_hash, erasure_verify
from dsr.fulfilment.datamap import DataMap, datamap_parse
from tests.support.shop.models import Customer, Order, Ticket

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
ANN = Subject(reference="DSR-TEST", identities={"email": "ann@example.com"}, request_type="erasure")

DELETED = """
- name: customer
  model: shop.Customer
  identities: {email: email}
  fields: {id: none, email: {category: identifiers, erasure: delete}, name: {category: identifiers, erasure: delete},
           phone: {category: identifiers, erasure: delete}, created_at: none}
- name: orders
  model: shop.Order
  fields: {id: none, customer_id: none, ordered_at: {category: commercial_information, erasure: delete},
           status: none, total_cents: {category: commercial_information, erasure: delete}}
- name: tickets
  model: shop.Ticket
  fields: {id: none, customer_id: none, order_id: none, opened_at: none,
           body: {category: customer_records, others_data: true, erasure: delete}}
"""
REWRITTEN = """
- name: customer
  model: shop.Customer
  identities: {email: email}
  fields: {id: none, email: {category: identifiers, erasure: hash}, name: {category: identifiers, erasure: fixed},
           phone: {category: identifiers, erasure: random}, created_at: none}
- name: orders
  model: shop.Order
  fields: {id: none, customer_id: none, ordered_at: none, status: {category: commercial_information, erasure: fixed,
           erasure_value: VOID}, total_cents: {category: commercial_information, erasure: keep,
           keep_reason: "Tax law: 7 years"}}
- name: tickets
  model: shop.Ticket
  fields: {id: none, customer_id: none, order_id: none, opened_at: none,
           body: {category: customer_records, others_data: true, erasure: fixed}}
"""


def connector(collections: str = DELETED, *, tickets_by_order: bool = True) -> DjangoConnector:
    text = (
        "systems:\n  - name: accounts\n    owner: accounts@example.com\n    kind: django\n    references:\n"
        "      - customer.id -> orders.customer_id\n      - customer.id -> tickets.customer_id\n"
        + ("      - orders.id -> tickets.order_id\n" if tickets_by_order else "")
        + "    collections:\n"
        + textwrap.indent(textwrap.dedent(collections).strip("\n"), "      ")
        + "\n"
    )
    return DjangoConnector(datamap_parse(text.encode()).systems[0])


@pytest.fixture
def shop(db):
    ann = Customer.objects.create(email="ann@example.com", name="Ann", phone="+1 555 0101", created_at=NOW)
    bob = Customer.objects.create(email="bob@example.com", name="Bob", phone="+1 555 0102", created_at=NOW)
    orders = [Order.objects.create(customer=ann, ordered_at=NOW, status="placed", total_cents=c) for c in (100, 200)]
    Order.objects.create(customer=bob, ordered_at=NOW, status="placed", total_cents=300)
    for order in orders:
        Ticket.objects.create(customer=ann, order=order, opened_at=NOW, body=f"About order {order.pk}")
    Ticket.objects.create(customer=ann, opened_at=NOW, body="Hello")
    Ticket.objects.create(customer=bob, opened_at=NOW, body="Bob's")
    return {"ann": ann, "bob": bob, "orders": orders}


def everything():
    return {
        "customer": list(Customer.objects.order_by("pk").values()),
        "orders": list(Order.objects.order_by("pk").values()),
        "tickets": list(Ticket.objects.order_by("pk").values()),
    }


def test_the_rehearsal_counts_and_changes_nothing(shop):
    before = everything()
    plan = connector().erase_plan(ANN)
    assert everything() == before
    assert plan.problems == ()
    assert [r.collection for r in plan.rows] == ["tickets", "orders", "customer"]
    assert plan.counts == {
        "tickets": {"deleted": 3, "updated": 0, "kept": 0},
        "orders": {"deleted": 2, "updated": 0, "kept": 0},
        "customer": {"deleted": 1, "updated": 0, "kept": 0},
    }


def test_erase_deletes_the_person_only_and_verifies(shop):
    accounts = connector()
    plan = accounts.erase_plan(ANN)
    erased = accounts.erase(ANN, plan)
    assert erased.counts == {
        "tickets": {"deleted": 3, "updated": 0},
        "orders": {"deleted": 2, "updated": 0},
        "customer": {"deleted": 1, "updated": 0},
    }
    assert list(Customer.objects.values_list("email", flat=True)) == ["bob@example.com"]
    assert list(Order.objects.values_list("total_cents", flat=True)) == [300]
    assert list(Ticket.objects.values_list("body", flat=True)) == ["Bob's"]
    assert erasure_verify(accounts, ANN, plan) == []


def test_verification_fails_while_the_rows_are_there(shop):
    accounts = connector()
    problems = erasure_verify(accounts, ANN, accounts.erase_plan(ANN))
    assert f"accounts.customer: row {shop['ann'].pk} was to be deleted and is still found" in problems


def test_rows_outside_the_plan_are_never_cascaded_to(shop):
    # Bob's ticket is about Ann's order, and the map does not follow tickets from orders (so it is
    # not Ann's): Django's delete() would set it null; the plan refuses instead.
    Ticket.objects.create(customer=shop["bob"], order=shop["orders"][0], opened_at=NOW, body="Bob on Ann's order")
    before = everything()
    plan = connector(tickets_by_order=False).erase_plan(ANN)
    assert plan.problems[0].startswith("accounts.orders: deleting its rows breaks a constraint (1 row of shop.Ticket")
    # ... and so the customer, whose orders the rehearsal could not delete, cannot go either.
    assert plan.problems[1].startswith("accounts.customer: deleting its rows breaks a constraint (2 rows of shop.Order")
    assert len(plan.problems) == 2
    assert everything() == before
    with pytest.raises(ConnectorMisconfigured, match="the plan has problems"):
        connector(tickets_by_order=False).erase(ANN, plan)
    assert everything() == before


def test_a_parent_whose_children_stay_is_masked_and_a_not_null_mask_is_a_problem(shop):
    kept = DELETED.replace(
        "body: {category: customer_records, others_data: true, erasure: delete}",
        'body: {category: customer_records, others_data: true, erasure: keep, keep_reason: "Fraud case"}',
    )
    plan = connector(kept).erase_plan(ANN)
    rows = {r.collection: r for r in plan.rows}
    assert not rows["tickets"].delete and not rows["orders"].delete and not rows["customer"].delete
    assert "masked instead of deleted" in rows["customer"].note
    # Django's CharFields are NOT NULL: nulling them is refused at planning, by field.
    assert "accounts.customer.email: erasure 'delete' sets NULL, but the column is NOT NULL" in plan.problems
    assert "accounts.orders.ordered_at: erasure 'delete' sets NULL, but the column is NOT NULL" in plan.problems


def test_each_rewriting_strategy(shop):
    accounts = connector(REWRITTEN)
    plan = accounts.erase_plan(ANN)
    assert plan.problems == ()
    assert plan.counts["tickets"] == {"deleted": 0, "updated": 3, "kept": 3}
    erased = accounts.erase(ANN, plan)
    ann = Customer.objects.get(pk=shop["ann"].pk)
    # The email column holds 254 characters: the whole 64-digit hash; phone (40) a random token.
    assert ann.email == erasure_hash("ann@example.com") and ann.name == FIXED_TEXT
    assert ann.phone != "+1 555 0101" and len(ann.phone) == 32
    assert list(Order.objects.order_by("pk").values_list("status", "total_cents")) == [
        ("VOID", 100), ("VOID", 200), ("placed", 300),
    ]  # fmt: skip
    assert list(Ticket.objects.order_by("pk").values_list("body", flat=True)) == [FIXED_TEXT] * 3 + ["Bob's"]
    assert Customer.objects.get(pk=shop["bob"].pk).email == "bob@example.com"
    assert erased.fields == {
        "customer.email": 1, "customer.name": 1, "customer.phone": 1, "orders.status": 2, "tickets.body": 3,
    }  # fmt: skip
    assert erasure_verify(accounts, ANN, plan) == []


def test_a_ticket_added_after_planning_raises_plan_changed(shop):
    accounts = connector()
    plan = accounts.erase_plan(ANN)
    Ticket.objects.create(customer=shop["ann"], opened_at=NOW, body="One more")
    before = everything()
    with pytest.raises(PlanChanged):
        accounts.erase(ANN, plan)
    assert everything() == before


def test_a_failure_half_way_rolls_the_system_back_whole(shop, monkeypatch):
    accounts = connector()
    plan = accounts.erase_plan(ANN)
    applied = []
    original = DjangoConnector._apply

    def failing(self, row, fields):
        if row.collection == "customer":  # after tickets and orders were deleted
            raise DatabaseError("disk full")
        applied.append(row.collection)
        return original(self, row, fields)

    monkeypatch.setattr(DjangoConnector, "_apply", failing)
    before = everything()
    with pytest.raises(ConnectorError, match="disk full"):
        accounts.erase(ANN, plan)
    assert applied == ["tickets", "orders"]
    assert everything() == before


def test_the_guard_refuses_a_strategy_the_column_cannot_take():
    bad = REWRITTEN.replace(
        "email: {category: identifiers, erasure: hash}", 'email: {category: identifiers, erasure: "null"}'
    )
    system = connector(bad).system
    messages = datamap_guard_messages(DataMap(path="map.yaml", version="x", systems=(system,)))
    assert [m.id for m in messages] == ["datamap.E006"]
    assert "accounts.customer.email: erasure 'null' sets NULL, but the column is NOT NULL" in messages[0].msg
    good = DataMap(path="map.yaml", version="x", systems=(connector(REWRITTEN).system,))
    assert datamap_guard_messages(good) == []

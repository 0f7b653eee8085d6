"""The `correct` instruction on real systems: an `sql` system (SQLite, and PostgreSQL under
DATABASE_URL) and a `django` system (the product's database, with the test-only shop app). Only
the declared column of the named row changes, the value read back must be the value written, and
a mismatch or a failure half-way rolls the whole system back."""

from datetime import UTC, datetime

import pytest
from django.db import connection as django_connection

from dsr.fulfilment.connectors.base import ConnectorMisconfigured, Instructed, Instruction
from dsr.fulfilment.connectors.correction import CorrectionRefused
from dsr.fulfilment.connectors.django_models import DjangoConnector
from dsr.fulfilment.datamap import datamap_parse
from tests.fulfilment.correction_shop import ANN, correction_shop, shop_backend  # noqa: F401
from tests.support.shop.models import Customer


def correct(*items) -> Instruction:
    return Instruction(action="correct", items=tuple(items))


# --- sql ----------------------------------------------------------------------------------------


def test_sql_corrects_only_the_declared_column_of_the_named_rows_and_reads_it_back(correction_shop):
    shop = correction_shop
    answer = shop.connector().instruct(
        ANN,
        correct(
            {"collection": "customer", "key": 1, "field": "name", "value": "Ann Lindqvist"},
            {"collection": "contact", "key": 11, "field": "phone", "value": "+1 555 0110"},
        ),
    )
    assert answer == Instructed(confirmed=True, counts={"customer": 1, "contact": 1})
    customers = shop.rows("customer")
    assert customers[0] == {"id": 1, "email": "ann@example.com", "name": "Ann Lindqvist", "city": "Oslo", "edits": 1}
    assert customers[1] == {"id": 2, "email": "bob@example.com", "name": "Bob", "city": "Rome", "edits": 0}
    assert [r["phone"] for r in shop.rows("contact")] == ["+1 555 0101", "+1 555 0110", "+1 555 0102"]


def test_sql_an_item_without_a_key_corrects_every_row_of_the_person_in_that_collection(correction_shop):
    shop = correction_shop
    answer = shop.connector().instruct(
        ANN, correct({"collection": "contact", "key": None, "field": "phone", "value": "+46 8 123"})
    )
    assert answer.counts == {"contact": 2}
    assert [r["phone"] for r in shop.rows("contact")] == ["+46 8 123", "+46 8 123", "+1 555 0102"]


def test_sql_a_value_read_back_different_rolls_the_system_back_whole(correction_shop):
    shop = correction_shop
    shop.uppercase_names()
    before = (shop.rows("customer"), shop.rows("contact"))
    with pytest.raises(CorrectionRefused, match="read back a different value") as refused:
        shop.connector().instruct(
            ANN,
            correct(
                {"collection": "contact", "key": 10, "field": "phone", "value": "+1 555 0199"},  # applied first
                {"collection": "customer", "key": 1, "field": "name", "value": "Ann Lindqvist"},
            ),
        )
    assert refused.value.retry is False
    assert (shop.rows("customer"), shop.rows("contact")) == before


def test_sql_a_failure_half_way_leaves_the_system_exactly_as_before(correction_shop):
    shop = correction_shop
    before = (shop.rows("customer"), shop.rows("contact"))
    with pytest.raises(CorrectionRefused, match="refused the correction of row 1"):
        shop.connector().instruct(
            ANN,
            correct(
                {"collection": "customer", "key": 1, "field": "name", "value": "Ann Lindqvist"},
                {"collection": "customer", "key": 1, "field": "email", "value": "bob@example.com"},  # unique
            ),
        )
    assert (shop.rows("customer"), shop.rows("contact")) == before


def test_sql_a_value_the_column_cannot_take_is_refused_before_it_is_written(correction_shop):
    shop = correction_shop
    before = shop.rows("customer")
    with pytest.raises(CorrectionRefused, match="longer than the column takes"):
        shop.connector().instruct(
            ANN,
            correct(
                {"collection": "customer", "key": 1, "field": "name", "value": "Ann L"},
                {"collection": "customer", "key": 1, "field": "city", "value": "x" * 30},
            ),
        )
    assert shop.rows("customer") == before


def test_sql_a_column_the_map_does_not_declare_correctable_is_refused_by_item(correction_shop):
    shop = correction_shop
    before = shop.rows("customer")
    with pytest.raises(ConnectorMisconfigured, match="item 2: customer.edits is not a field the data map declares"):
        shop.connector().instruct(
            ANN,
            correct(
                {"collection": "customer", "key": 1, "field": "name", "value": "Ann L"},
                {"collection": "customer", "key": 1, "field": "edits", "value": "99"},
            ),
        )
    with pytest.raises(ConnectorMisconfigured, match="'orders' is not a collection of shop"):
        shop.connector().instruct(ANN, correct({"collection": "orders", "key": 1, "field": "name", "value": "x"}))
    assert shop.rows("customer") == before


def test_sql_injection_is_only_ever_a_value(correction_shop):
    shop = correction_shop
    value = "Ann'); DROP TABLE customer; --"
    shop.connector().instruct(ANN, correct({"collection": "customer", "key": 1, "field": "name", "value": value}))
    assert shop.rows("customer")[0]["name"] == value and len(shop.rows("customer")) == 2


def test_sql_a_row_gone_since_it_was_read_fails_and_changes_nothing(correction_shop):
    shop = correction_shop
    with pytest.raises(CorrectionRefused, match="row 99 is no longer there"):
        shop.connector().instruct(
            ANN,
            correct(
                {"collection": "customer", "key": 1, "field": "name", "value": "Ann L"},
                {"collection": "customer", "key": 99, "field": "name", "value": "Nobody"},
            ),
        )
    assert shop.rows("customer")[0]["name"] == "Ann"


# --- django -------------------------------------------------------------------------------------

DJANGO_MAP = """
systems:
  - name: accounts
    owner: accounts@example.com
    kind: django
    collections:
      - name: customer
        model: shop.Customer
        identities: {email: email}
        fields:
          id: none
          email: {category: identifiers, corrects: email}
          name: {category: identifiers, corrects: full_name}
          phone: {category: identifiers, corrects: phone}
          created_at: none
"""
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def customers(db):
    return (
        Customer.objects.create(email="ann@example.com", name="Ann", phone="+1 555 0101", created_at=NOW),
        Customer.objects.create(email="bob@example.com", name="Bob", phone="+1 555 0102", created_at=NOW),
    )


def _accounts() -> DjangoConnector:
    return DjangoConnector(datamap_parse(DJANGO_MAP.encode()).systems[0])


def _rows():
    return list(Customer.objects.order_by("pk").values("email", "name", "phone"))


def test_django_corrects_through_the_orm_and_reads_back(customers):
    ann, bob = customers
    answer = _accounts().instruct(
        ANN,
        correct(
            {"collection": "customer", "key": ann.pk, "field": "name", "value": "Ann Lindqvist"},
            {"collection": "customer", "key": ann.pk, "field": "phone", "value": "+46 8 123"},
        ),
    )
    assert answer == Instructed(confirmed=True, counts={"customer": 2})
    assert _rows() == [
        {"email": "ann@example.com", "name": "Ann Lindqvist", "phone": "+46 8 123"},
        {"email": "bob@example.com", "name": "Bob", "phone": "+1 555 0102"},
    ]


def test_django_a_failure_half_way_rolls_the_system_back(customers):
    ann, _ = customers
    before = _rows()
    with pytest.raises(CorrectionRefused, match="longer than the column takes"):
        _accounts().instruct(
            ANN,
            correct(
                {"collection": "customer", "key": ann.pk, "field": "name", "value": "Ann Lindqvist"},
                {"collection": "customer", "key": ann.pk, "field": "phone", "value": "9" * 41},
            ),
        )
    assert _rows() == before


def test_django_a_value_read_back_different_rolls_the_system_back(customers):
    ann, _ = customers
    with django_connection.cursor() as cursor:
        if django_connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_name_upper() RETURNS trigger AS $$ "
                "BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER name_upper BEFORE UPDATE ON shop_customer FOR EACH ROW EXECUTE FUNCTION test_name_upper()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER name_upper AFTER UPDATE OF name ON shop_customer "
                "BEGIN UPDATE shop_customer SET name = upper(NEW.name) WHERE id = NEW.id; END"
            )
    before = _rows()
    with pytest.raises(CorrectionRefused, match="read back a different value"):
        _accounts().instruct(
            ANN,
            correct(
                {"collection": "customer", "key": ann.pk, "field": "phone", "value": "+46 8 123"},
                {"collection": "customer", "key": ann.pk, "field": "name", "value": "Ann Lindqvist"},
            ),
        )
    assert _rows() == before


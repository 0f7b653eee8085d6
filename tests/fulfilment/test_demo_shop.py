"""The demo shop `make run` searches: `manage.py dsr_demo_shop` makes the shipped map's `shop`
database (the bench's tables), holding the demo customers `dsr_demo_load` files requests for, once
however often it runs; what it holds shows the search, the look-back and the redaction."""

import io
import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from sqlalchemy import create_engine, inspect, text

from dsr.fulfilment.checks import datamap_guard
from dsr.fulfilment.connectors import Subject, connector_for
from dsr.fulfilment.connectors.sql import engines_dispose
from dsr.fulfilment.datamap import datamap_load
from dsr.fulfilment.demo_shop import TABLES
from dsr.fulfilment.records import REDACTED, RecordPolicy
from dsr.models import DemoCustomer
from tests.support import ROOT


@pytest.fixture
def shop_dsn(tmp_path, monkeypatch):
    dsn = f"sqlite:///{tmp_path / 'var' / 'demo_shop.sqlite3'}"
    monkeypatch.setenv("DSR_DEMO_SHOP_DSN", dsn)
    yield dsn
    engines_dispose()


def demo_shop(*args) -> str:
    out = io.StringIO()
    call_command("dsr_demo_shop", *args, stdout=out)
    return out.getvalue()


def counts(dsn):
    engine = create_engine(dsn)
    with engine.connect() as connection:
        found = {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    engine.dispose()
    return found


def test_the_command_makes_the_shop_once(shop_dsn):
    assert demo_shop() == (
        "Demo shop: added 7 customer, 10 orders, 5 newsletter_subscriptions, 5 chat_messages, 3 call_records.\n"
    )
    first = counts(shop_dsn)
    assert demo_shop() == "Demo shop already holds its demo rows.\n"
    assert counts(shop_dsn) == first == {"customer": 7, "orders": 10, "newsletter_subscriptions": 5,
                                         "chat_messages": 5, "call_records": 3}  # fmt: skip


def test_the_shop_has_the_bench_shape_and_every_column_is_classified(shop_dsn):
    demo_shop()
    engine = create_engine(shop_dsn)
    inspector = inspect(engine)
    assert sorted(inspector.get_table_names()) == sorted(TABLES)
    columns = {t: [c["name"] for c in inspector.get_columns(t)] for t in TABLES}
    indexed = {t: {tuple(i["column_names"]) for i in inspector.get_indexes(t)} for t in TABLES}
    engine.dispose()
    # customers.sql, column for column (bench/README: the bench's database)
    assert columns == {
        "customer": ["id", "email", "name", "phone", "address_line", "city", "postal_code", "country",
                     "date_of_birth", "created_at"],
        "orders": ["id", "customer_id", "ordered_at", "status", "total_cents", "shipping_name", "shipping_address"],
        "newsletter_subscriptions": ["id", "email", "list_name", "subscribed_at", "ip_address"],
        "chat_messages": ["id", "customer_id", "body", "channel", "created_at"],
        "call_records": ["id", "customer_id", "started_at", "duration_seconds", "phone_number", "agent_notes"],
    }  # fmt: skip
    shop = datamap_load().system("shop")
    assert {c.location: list(c.field_names) for c in shop.collections} == columns
    # every identity and reference field the search queries is indexed
    for table, column in [("orders", "customer_id"), ("newsletter_subscriptions", "email"),
                          ("chat_messages", "customer_id"), ("call_records", "customer_id")]:  # fmt: skip
        assert (column,) in indexed[table]
    assert datamap_guard() == []


def test_it_holds_the_demo_customers_and_others(shop_dsn, db):
    call_command("dsr_demo_load", stdout=io.StringIO())
    demo_shop()
    engine = create_engine(shop_dsn)
    with engine.connect() as connection:
        emails = set(connection.execute(text("SELECT email FROM customer")).scalars())
    engine.dispose()
    assert set(DemoCustomer.objects.values_list("email", flat=True)) < emails
    assert all(e == e.lower() for e in emails)  # stored normalised, as the search compares them
    assert any(not e.endswith("@demo.example") for e in emails)


def test_a_search_of_the_shop_shows_redaction_and_the_look_back(shop_dsn):
    demo_shop()
    shop = datamap_load().system("shop")
    since = datetime.now(UTC) - timedelta(days=365)  # CCPA: the 12 months before the request
    policy = RecordPolicy(system=shop, since=since, own_identities=frozenset({"katherine.johnson@demo.example"}))
    shown = []

    class Sink:
        def write(self, collection, record):
            record = policy.apply(shop.collection(collection), record)
            if record is not None:
                shown.append((collection, record))

    katherine = Subject(reference="DSR-1", identities={"email": "katherine.johnson@demo.example"})
    exported = connector_for(shop).export(katherine, Sink())
    assert exported.counts == {"customer": 1, "newsletter_subscriptions": 2, "orders": 3, "chat_messages": 2,
                               "call_records": 1}  # fmt: skip
    bodies = [r["body"] for c, r in shown if c == "chat_messages"]
    assert all(REDACTED in body for body in bodies)
    assert not any(re.search(r"robin\.roe@|0199", body) for body in bodies)
    assert {r["id"] for c, r in shown if c == "orders"} == {5, 6}  # order 7 is older than the 12 months


def test_without_its_dsn_the_command_fails_with_a_clear_message(monkeypatch):
    monkeypatch.delenv("DSR_DEMO_SHOP_DSN", raising=False)
    with pytest.raises(CommandError, match="DSR_DEMO_SHOP_DSN is not set"):
        demo_shop()
    monkeypatch.setenv("DSR_DEMO_SHOP_DSN", "no-such-scheme://x")
    with pytest.raises(CommandError, match="does not hold a database URL"):
        demo_shop()


def test_make_run_makes_the_shop_before_migrating_and_run_mode_names_it():
    recipe = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    lines = recipe.stdout.splitlines()
    migrate = next(i for i, line in enumerate(lines) if "manage.py migrate" in line)
    shop = next(i for i, line in enumerate(lines) if "manage.py dsr_demo_shop" in line)
    demo = next(i for i, line in enumerate(lines) if "manage.py dsr_demo_load" in line)
    # The shop exists before migrate's system checks inspect it (no warning about a missing shop),
    # and before the demo requests start their searches.
    assert shop < migrate < demo
    settings_text = (ROOT / "config" / "settings" / "run.py").read_text()
    assert "DSR_DEMO_SHOP_DSN" in settings_text and "demo_shop.sqlite3" in settings_text

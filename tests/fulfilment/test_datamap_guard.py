"""The data map's privacy guard (dsr/fulfilment/checks.py): Django system checks that fail
`manage.py check` — and so CI — when the map does not load, when a mapped model or table has a
column the map does not classify, or when the map names a field, model or table that is not
there; a warning when an SQL system could not be inspected. The shipped map passes with the
demo shop."""

import re
import textwrap

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from sqlalchemy import create_engine, text

from dsr.fulfilment.checks import datamap_guard
from dsr.fulfilment.connectors.sql import engines_dispose
from dsr.fulfilment.datamap import DataMapError, datamap_parse
from dsr.fulfilment.demo_shop import demo_shop_create


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    engines_dispose()


@pytest.fixture
def demo_shop(tmp_path, monkeypatch):
    path = tmp_path / "demo_shop.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    demo_shop_create(engine)
    monkeypatch.setenv("DSR_DEMO_SHOP_DSN", f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def datamap_file(settings, tmp_path):
    def write(content: str):
        path = tmp_path / "datamap.yaml"
        path.write_text(textwrap.dedent(content))
        settings.DSR_DATAMAP = str(path)
        return path

    return write


def ids(messages):
    return [m.id for m in messages]


DJANGO_MAP = """
    systems:
      - name: accounts
        owner: accounts@example.com
        kind: django
        references: ["customer.id -> orders.customer_id"]
        collections:
          - name: customer
            model: shop.Customer
            identities: {email: email}
            fields: {id: none, email: identifiers, name: identifiers, phone: identifiers, created_at: none}
          - name: orders
            model: shop.Order
            fields: {id: none, customer_id: none, ordered_at: commercial_information,
                     status: commercial_information, total_cents: commercial_information}
"""


def test_the_guard_is_a_normal_system_check():
    # registered as a normal check (not only under --deploy), so every `check` and command runs it
    assert "datamap" in checks.registry.registry.tags_available(deployment_checks=False)
    assert datamap_guard in checks.registry.registry.get_checks(include_deployment_checks=False)


def test_the_shipped_map_and_the_demo_shop_pass(demo_shop, settings):
    assert settings.DSR_DATAMAP.endswith("config/datamap.yaml")
    assert datamap_guard() == []
    call_command("check", "--fail-level", "WARNING")  # raises SystemCheckError on any finding


def test_a_map_that_does_not_load_fails_the_check_naming_file_system_and_field(datamap_file):
    path = datamap_file(DJANGO_MAP.replace("status: commercial_information", "status: purchases"))
    found = datamap_guard()
    assert ids(found) == ["datamap.E001"]
    assert re.match(
        rf"{re.escape(str(path))}: line \d+: system 'accounts' › collection 'orders' › field 'status'", found[0].msg
    )
    assert "unknown category 'purchases'" in found[0].msg
    with pytest.raises(SystemCheckError, match="datamap.E001"):
        call_command("check")


def test_a_collection_no_identity_reaches_is_refused_when_the_map_loads(datamap_file):
    unreachable = DJANGO_MAP.replace('references: ["customer.id -> orders.customer_id"]', "references: []")
    with pytest.raises(DataMapError, match="collection 'orders': cannot be reached from any identity"):
        datamap_parse(textwrap.dedent(unreachable).encode())
    datamap_file(unreachable)
    found = datamap_guard()
    assert ids(found) == ["datamap.E001"] and "cannot be reached from any identity" in found[0].msg


def test_a_django_model_column_the_map_does_not_classify(datamap_file):
    datamap_file(DJANGO_MAP.replace(", phone: identifiers", ""))
    found = datamap_guard()
    assert ids(found) == ["datamap.E002"]
    assert "collection 'customer': model shop.Customer has columns the map does not classify: phone" in found[0].msg
    with pytest.raises(SystemCheckError, match="datamap.E002"):
        call_command("check")
    datamap_file(DJANGO_MAP)
    assert datamap_guard() == []


def test_a_mapped_field_or_model_that_does_not_exist(datamap_file):
    datamap_file(DJANGO_MAP.replace("phone: identifiers", "phone: identifiers, nickname: identifiers"))
    found = datamap_guard()
    assert ids(found) == ["datamap.E004"] and "model shop.Customer has no field 'nickname'" in found[0].msg
    datamap_file(DJANGO_MAP.replace("model: shop.Order", "model: shop.Invoice"))
    found = datamap_guard()
    assert ids(found) == ["datamap.E005"] and "no model 'shop.Invoice' is installed" in found[0].msg


def test_a_sql_table_column_the_map_does_not_classify(demo_shop):
    with demo_shop.begin() as connection:
        connection.execute(text("ALTER TABLE customer ADD COLUMN ssn TEXT"))
    found = datamap_guard()
    assert ids(found) == ["datamap.E003"]
    assert "collection 'customer': table 'customer' has columns the map does not classify: ssn" in found[0].msg
    with pytest.raises(SystemCheckError, match="datamap.E003"):
        call_command("check")


def test_a_mapped_column_or_table_the_database_does_not_have(demo_shop):
    with demo_shop.begin() as connection:
        connection.execute(text("ALTER TABLE call_records DROP COLUMN agent_notes"))
        connection.execute(text("DROP TABLE chat_messages"))
    found = datamap_guard()
    assert sorted(ids(found)) == ["datamap.E004", "datamap.E005"]
    messages = " | ".join(m.msg for m in found)
    assert "table 'call_records' has no column 'agent_notes'" in messages
    assert "table 'chat_messages' does not exist" in messages


def test_a_system_that_cannot_be_inspected_is_a_warning_saying_so(monkeypatch, tmp_path):
    monkeypatch.delenv("DSR_DEMO_SHOP_DSN", raising=False)
    found = datamap_guard()
    assert ids(found) == ["datamap.W001"] and isinstance(found[0], checks.Warning)
    assert "system 'shop' could not be inspected" in found[0].msg and "DSR_DEMO_SHOP_DSN" in found[0].msg
    missing = tmp_path / "nowhere.sqlite3"
    monkeypatch.setenv("DSR_DEMO_SHOP_DSN", f"sqlite:///{missing}")
    found = datamap_guard()
    assert ids(found) == ["datamap.W001"] and "does not exist" in found[0].msg
    assert not missing.exists()  # inspecting never creates the database
    call_command("check")  # a warning does not fail the default check

"""Restriction and opt-outs on the systems the product writes to itself (issue 11): the map's
`flags` and the recipients' `contact`/`system`, validated with file and line; the guard's
datamap.E007 (a flag column that cannot take true); and the sql (SQLite and PostgreSQL) and
django handlers that set the flags on the person's rows only, read them back, confirm with counts,
set nothing twice and roll the system back whole when a row does not read back marked."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import Boolean, Column, ForeignKey, Integer, MetaData, Table, Text, create_engine, text

from dsr.fulfilment.checks import datamap_guard_messages
from dsr.fulfilment.connectors.base import ConnectorError, ConnectorMisconfigured, Instruction, Subject, connector_for
from dsr.fulfilment.connectors.flags import flag_items, instruction_kind
from dsr.fulfilment.connectors.sql import engines_dispose
from dsr.fulfilment.datamap import DataMap, DataMapError, datamap_parse
from dsr.fulfilment.services import instructions, runs
from dsr.models import Status
from dsr.services.audit import Actor
from tests.fulfilment.company import _postgres_url
from tests.fulfilment.conftest import verified_request
from tests.support.shop.models import AdProfile

DSN_ENV = "DSR_TEST_FLAGS_DSN"
ANN = Subject(reference="DSR-TEST", identities={"email": "ann@example.com"}, request_type="restriction")

SQL_MAP = """
systems:
  - name: shop
    owner: data@example.com
    kind: sql
    connection: {{dsn_env: {env}{schema}}}
    references: ["customer.id -> ad_events.customer_id"]
    collections:
      - name: customer
        identities: {{email: email}}
        flags: {{restrict: restricted, opt_out_sale: sale_opt_out}}
        fields: {{id: none, email: identifiers, restricted: none, sale_opt_out: none, segment: inferences}}
      - name: ad_events
        flags: {{restrict: restricted, limit_sensitive: sensitive_limited}}
        fields: {{id: none, customer_id: none, restricted: none, sensitive_limited: none,
                 health_interest: sensitive_personal_information}}
"""


# --- The map ----------------------------------------------------------------------------------------

BASE = """
systems:
  - name: shop
    owner: data@example.com
    kind: sql
    connection: {dsn_env: SHOP_DSN}
    recipients:
%(recipients)s
    collections:
      - name: customer
        identities: {email: email}
%(flags)s
        fields: {id: none, email: identifiers, restricted: none}
  - name: ads
    owner: ads@example.com
    kind: http
    connection: {url: "https://ads.example/dsr", secret_env: ADS_SECRET}
    recipients:
%(ads_recipients)s
    collections:
      - name: profiles
        identities: {email: email}
        fields: {id: none, email: identifiers}
"""
NO_RECIPIENTS = "      []"


def parse(flags="", recipients=NO_RECIPIENTS, ads_recipients=NO_RECIPIENTS) -> DataMap:
    text_map = BASE % {"flags": flags, "recipients": recipients, "ads_recipients": ads_recipients}
    return datamap_parse(text_map.encode(), path="map.yaml")


def problems(**kwargs) -> list[str]:
    with pytest.raises(DataMapError) as raised:
        parse(**kwargs)
    return [str(p) for p in raised.value.problems]


def test_flags_are_read_per_collection():
    datamap = parse(flags="        flags: {restrict: restricted, opt_out_sale: restricted}")
    customer = datamap.system("shop").collection("customer")
    assert customer.flags == {"restrict": "restricted", "opt_out_sale": "restricted"}
    assert datamap.system("ads").collection("profiles").flags == {}


def test_a_flag_naming_no_field_an_unknown_action_or_the_key_is_refused_with_its_line():
    found = problems(flags="        flags: {restrict: blocked, sell: restricted, limit_sensitive: id}")
    assert (
        "line 12: system 'shop' › collection 'customer' › flags: flag 'restrict' names 'blocked', not one of its fields"
        in found
    )
    assert any(p.startswith("line 12: ") and "unknown flag 'sell' (one of: restrict, opt_out_sale" in p for p in found)
    assert any("field 'id' › flags: is the primary key" in p for p in found)
    assert problems(flags="        flags: [restricted]") == [
        "line 12: system 'shop' › collection 'customer' › flags: "
        "'flags' maps an action to a field, e.g. {restrict: restricted}"
    ]


def test_recipients_are_told_by_contact_or_through_a_system():
    datamap = parse(
        recipients="      - {name: Parcel carriers, category: Service providers, contact: dpo@parcels.example}\n"
        "      - {name: Ad network, category: Third parties, shared: true, system: ads}"
    )
    carriers, network = datamap.system("shop").recipients
    assert (carriers.contact, carriers.system, carriers.key) == ("dpo@parcels.example", "", "recipient:parcel_carriers")
    assert (network.contact, network.system, network.key) == ("", "ads", "recipient:ad_network")


def test_a_recipient_with_a_bad_contact_or_system_is_refused_with_its_line():
    found = problems(
        recipients="      - {name: A, category: Third parties, contact: not-an-address}\n"
        "      - {name: B, category: Third parties, system: nowhere}\n"
        "      - {name: C, category: Third parties, system: shop}\n"
        "      - {name: D, category: Third parties, system: ads, contact: d@example.com}"
    )
    assert "line 8: system 'shop' › recipient #1: contact 'not-an-address' is not an email address" in found
    assert "line 9: system 'shop' › recipient #2: system 'nowhere' is not a system of this map" in found
    assert (
        "line 10: system 'shop' › recipient #3: system 'shop' is a sql system; a recipient stands for an http or "
        "manual system" in found
    )
    assert any(p.startswith("line 11: ") and "not both" in p for p in found)


def test_one_recipient_listed_by_two_systems_must_be_told_the_same_way():
    found = problems(
        recipients="      - {name: Ad network, category: Third parties, contact: a@adnet.example}",
        ads_recipients="      - {name: Ad Network, category: Third parties, contact: b@adnet.example}",
    )
    assert len(found) == 1 and found[0].startswith("line 19: system 'ads' › recipient #1: recipient 'Ad Network'")
    assert "told differently on line 8 (system 'shop')" in found[0]
    same = parse(
        recipients="      - {name: Ad network, category: Third parties, contact: a@adnet.example}",
        ads_recipients="      - {name: Ad network, category: Third parties, contact: a@adnet.example}",
    )
    assert same.system("ads").recipients[0].key == same.system("shop").recipients[0].key


def test_which_kind_carries_the_instruction():
    datamap = parse(flags="        flags: {restrict: restricted}")
    shop, ads = datamap.system("shop"), datamap.system("ads")
    assert instruction_kind(shop, "restrict") == "sql"
    assert instruction_kind(shop, "opt_out_sale") == "manual"  # no flag declared: its owner is told
    assert instruction_kind(ads, "opt_out_sale") == "http"
    assert flag_items(shop, "restrict") == ({"collection": "customer", "keys": [], "set": {"restricted": True}},)
    assert flag_items(shop, "opt_out_sale") == ()


# --- sql: SQLite and PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request):
    if request.param == "sqlite":
        yield ("sqlite", None)
        return
    base = _postgres_url()
    name = f"dsr_flags_{uuid.uuid4().hex[:10]}"
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


class Shop:
    def __init__(self, engine, schema):
        self.engine, self.schema = engine, schema

    def table(self, name):
        return f"{self.schema}.{name}" if self.schema else name

    def connector(self, map_text: str = SQL_MAP):
        schema = f", schema: {self.schema}" if self.schema else ""
        return connector_for(datamap_parse(map_text.format(env=DSN_ENV, schema=schema).encode()).system("shop"))

    def rows(self, name):
        with self.engine.connect() as connection:
            return [
                dict(r) for r in connection.execute(text(f"SELECT * FROM {self.table(name)} ORDER BY id")).mappings()
            ]

    def execute(self, sql):
        with self.engine.begin() as connection:
            connection.execute(text(sql))


@pytest.fixture
def shop(backend, tmp_path):
    kind, url = backend
    previous = os.environ.get(DSN_ENV)
    if kind == "sqlite":
        dsn = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
        engine, schema = create_engine(dsn), None
    else:
        dsn = url.render_as_string(hide_password=False)
        engine, schema = create_engine(url), f"s_{uuid.uuid4().hex[:8]}"
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    metadata = MetaData(schema=schema)
    prefix = f"{schema}." if schema else ""
    customer = Table(
        "customer", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False), Column("email", Text),
        Column("restricted", Boolean, nullable=False), Column("sale_opt_out", Integer), Column("segment", Text),
    )  # fmt: skip
    events = Table(
        "ad_events", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customer.id")),
        Column("restricted", Boolean), Column("sensitive_limited", Boolean), Column("health_interest", Text),
    )  # fmt: skip
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            customer.insert(),
            [{"id": 1, "email": "ann@example.com", "restricted": False, "sale_opt_out": 0, "segment": "a"},
             {"id": 2, "email": "bob@example.com", "restricted": False, "sale_opt_out": 0, "segment": "b"}],
        )  # fmt: skip
        connection.execute(
            events.insert(),
            [{"id": 10, "customer_id": 1, "restricted": None, "sensitive_limited": False, "health_interest": "x"},
             {"id": 11, "customer_id": 1, "restricted": False, "sensitive_limited": False, "health_interest": "y"},
             {"id": 12, "customer_id": 2, "restricted": False, "sensitive_limited": False, "health_interest": "z"}],
        )  # fmt: skip
    os.environ[DSN_ENV] = dsn
    try:
        yield Shop(engine, schema)
    finally:
        if previous is None:
            os.environ.pop(DSN_ENV, None)
        else:
            os.environ[DSN_ENV] = previous
        engines_dispose()
        engine.dispose()


def _instruction(connector, action):
    return Instruction(action=action, items=flag_items(connector.system, action))


def test_restrict_sets_the_flags_on_the_persons_rows_only_and_reads_them_back(shop):
    connector = shop.connector()
    answer = connector.instruct(ANN, _instruction(connector, "restrict"))
    assert answer.confirmed and answer.pending == ""
    assert answer.counts == {"customer": 1, "ad_events": 2}
    assert [(r["id"], bool(r["restricted"])) for r in shop.rows("customer")] == [(1, True), (2, False)]
    assert [(r["id"], r["restricted"]) for r in shop.rows("ad_events")] == [(10, True), (11, True), (12, False)]
    assert {r["sensitive_limited"] for r in shop.rows("ad_events")} == {False}  # only the action's flag


def test_an_integer_flag_takes_1_and_telling_twice_sets_nothing_twice(shop):
    connector = shop.connector()
    assert connector.instruct(ANN, _instruction(connector, "opt_out_sale")).counts == {"customer": 1}
    assert [r["sale_opt_out"] for r in shop.rows("customer")] == [1, 0]
    shop.execute(f"UPDATE {shop.table('customer')} SET sale_opt_out = 7 WHERE id = 2")
    again = connector.instruct(ANN, _instruction(connector, "opt_out_sale"))
    assert again.counts == {"customer": 1} and [r["sale_opt_out"] for r in shop.rows("customer")] == [1, 7]


def test_limit_sensitive_marks_the_collection_holding_sensitive_data(shop):
    connector = shop.connector()
    assert connector.instruct(ANN, _instruction(connector, "limit_sensitive")).counts == {"ad_events": 2}
    assert [r["sensitive_limited"] for r in shop.rows("ad_events")] == [True, True, False]


def test_a_person_not_found_is_confirmed_with_nothing_marked(shop):
    connector = shop.connector()
    nobody = Subject(reference="DSR-X", identities={"email": "nobody@example.com"})
    assert connector.instruct(nobody, _instruction(connector, "restrict")).counts == {"customer": 0, "ad_events": 0}
    assert {bool(r["restricted"]) for r in shop.rows("customer")} == {False}


def test_an_instruction_setting_anything_but_the_maps_flag_is_refused_and_changes_nothing(shop):
    connector = shop.connector()
    forged = Instruction(action="restrict", items=({"collection": "customer", "keys": [], "set": {"segment": True}},))
    with pytest.raises(ConnectorMisconfigured, match="must set the map's restrict flag"):
        connector.instruct(ANN, forged)
    with pytest.raises(ConnectorMisconfigured, match="declares no flag for restrict"):
        connector.instruct(ANN, Instruction(action="restrict"))
    assert [r["segment"] for r in shop.rows("customer")] == ["a", "b"]


def test_a_text_flag_column_is_refused_by_the_guard_and_when_told(shop):
    text_flag = SQL_MAP.replace("opt_out_sale: sale_opt_out", "opt_out_sale: segment")
    connector = shop.connector(text_flag)
    with pytest.raises(ConnectorMisconfigured, match="shop.customer.segment: flag 'opt_out_sale' sets it to true"):
        connector.instruct(ANN, _instruction(connector, "opt_out_sale"))
    assert [r["segment"] for r in shop.rows("customer")] == ["a", "b"]
    schema = f", schema: {shop.schema}" if shop.schema else ""
    datamap = datamap_parse(text_flag.format(env=DSN_ENV, schema=schema).encode(), path="map.yaml")
    found = [m for m in datamap_guard_messages(datamap) if m.id == "datamap.E007"]
    assert len(found) == 1 and "column is text" in found[0].msg
    assert not [m for m in datamap_guard_messages(datamap_ok(shop)) if m.id == "datamap.E007"]


def datamap_ok(shop) -> DataMap:
    schema = f", schema: {shop.schema}" if shop.schema else ""
    return datamap_parse(SQL_MAP.format(env=DSN_ENV, schema=schema).encode(), path="map.yaml")


def test_a_row_that_does_not_read_back_marked_rolls_the_whole_system_back(shop):
    # A trigger (PostgreSQL) or a rule of the database that undoes one write: simulated by a flag
    # column that silently keeps its old value for one row.
    if shop.schema:
        shop.execute(
            f"CREATE FUNCTION {shop.schema}.keep_flag() RETURNS trigger AS $$ BEGIN "
            "IF NEW.id = 11 THEN NEW.restricted := OLD.restricted; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        shop.execute(
            f"CREATE TRIGGER keep_flag BEFORE UPDATE ON {shop.table('ad_events')} "
            f"FOR EACH ROW EXECUTE FUNCTION {shop.schema}.keep_flag()"
        )
    else:
        shop.execute(
            "CREATE TRIGGER keep_flag AFTER UPDATE ON ad_events WHEN NEW.id = 11 "
            "BEGIN UPDATE ad_events SET restricted = 0 WHERE id = 11; END"
        )
    connector = shop.connector()
    with pytest.raises(ConnectorError, match=r"shop.ad_events: 1 of 2 rows read back with restricted set"):
        connector.instruct(ANN, _instruction(connector, "restrict"))
    assert [bool(r["restricted"]) for r in shop.rows("customer")] == [False, False]  # the customer too: rolled back


# --- django ---------------------------------------------------------------------------------------

DJANGO_MAP = """
systems:
  - name: ads
    owner: ads@example.com
    kind: django
    collections:
      - name: profiles
        model: shop.AdProfile
        identities: {email: email}
        flags: {restrict: restricted, opt_out_sale: sale_opted_out, limit_sensitive: sensitive_limited}
        fields: {id: none, email: identifiers, segment: inferences, restricted: none, sale_opted_out: none,
                 sensitive_limited: none}
"""


@pytest.fixture
def profiles(db):
    return [
        AdProfile.objects.create(email="ann@example.com", segment="runners"),
        AdProfile.objects.create(email="ann@example.com", segment="readers", sale_opted_out=True),
        AdProfile.objects.create(email="bob@example.com", segment="cooks"),
    ]


def _flags(field):
    return list(AdProfile.objects.order_by("id").values_list(field, flat=True))


@pytest.mark.parametrize(
    "action,field",
    [("restrict", "restricted"), ("opt_out_sale", "sale_opted_out"), ("limit_sensitive", "sensitive_limited")],
)
def test_django_sets_each_flag_on_the_persons_rows_and_reads_them_back(profiles, action, field):
    connector = connector_for(datamap_parse(DJANGO_MAP.encode()).system("ads"))
    answer = connector.instruct(ANN, _instruction(connector, action))
    assert answer.confirmed and answer.counts == {"profiles": 2}
    assert _flags(field) == [True, True, False]
    assert connector.instruct(ANN, _instruction(connector, action)).counts == {"profiles": 2}  # nothing set twice
    assert _flags(field) == [True, True, False]


def test_django_guard_refuses_a_text_flag(db):
    text_flag = DJANGO_MAP.replace("restrict: restricted", "restrict: segment")
    found = [m for m in datamap_guard_messages(datamap_parse(text_flag.encode())) if m.id == "datamap.E007"]
    assert len(found) == 1 and "ads.profiles.segment: flag 'restrict' sets it to true" in found[0].msg
    assert not [m for m in datamap_guard_messages(datamap_parse(DJANGO_MAP.encode())) if m.id == "datamap.E007"]
    connector = connector_for(datamap_parse(text_flag.encode()).system("ads"))
    with pytest.raises(ConnectorMisconfigured, match="column is text"):
        connector.instruct(ANN, _instruction(connector, "restrict"))


# --- Through the run and the channel -----------------------------------------------------------------


def test_a_restriction_run_marks_the_sql_system_once_and_completes(
    shop, officer, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    schema = f", schema: {shop.schema}" if shop.schema else ""
    path = tmp_path / "datamap.yaml"
    path.write_text(SQL_MAP.format(env=DSN_ENV, schema=schema))
    settings.DSR_DATAMAP = str(path)
    queued: list[int] = []
    monkeypatch.setattr(instructions, "_queue", [lambda pk, countdown: queued.append(pk)])
    req = verified_request(officer=officer, request_type="restriction", email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    (system_run,) = run.systems.all()
    assert (system_run.system, system_run.kind, queued) == ("shop", "sql", [system_run.pk])
    for _ in range(2):  # the task delivered twice: the second finds it confirmed and does nothing
        with django_capture_on_commit_callbacks(execute=True):
            instructions.instruction_execute(system_run_id=system_run.pk)
    system_run.refresh_from_db()
    assert system_run.instructed["counts"] == {"customer": 1, "ad_events": 2} and system_run.attempts == 1
    assert [bool(r["restricted"]) for r in shop.rows("customer")] == [True, False]
    assert [r["restricted"] for r in shop.rows("ad_events")] == [True, True, False]
    req.refresh_from_db()
    assert req.status == Status.COMPLETED and "- shop: confirmed on " in req.response_message

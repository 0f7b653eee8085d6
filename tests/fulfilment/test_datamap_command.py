"""`manage.py dsr_datamap check|show|import-fides`: exit codes, what goes to stdout and stderr, the
health checks it records for the dashboard, and an import of a Fides dataset file that round-trips
through the loader."""

import io
import json
import textwrap
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

from dsr.fulfilment.categories import category_label
from dsr.fulfilment.connectors import base as connectors
from dsr.fulfilment.connectors.base import Connector, ConnectorError, Exported, Found, Health
from dsr.fulfilment.datamap import datamap_load
from dsr.fulfilment.models import SystemHealth

SHIPPED = Path(settings.BASE_DIR) / "config" / "datamap.yaml"
FIDES_FILE = Path(__file__).parent / "data" / "fides_webshop_dataset.yml"


def run(*args) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("dsr_datamap", *[str(a) for a in args], stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


BROKEN_MAP = textwrap.dedent(
    """\
    systems:
      - name: shop
        owner: team@example.com
        kind: sql
        connection: {dsn_env: SHOP_DSN, password: hunter2}
        collections:
          - name: customer
            identities: {email: email}
            fields:
              id: none
              email: emails
          - name: orders
            fields: {id: none}
    """
)


# --- check -------------------------------------------------------------------------------------


def _shipped_counts() -> str:
    shipped = datamap_load(SHIPPED)
    return f"{len(shipped.systems)} system(s), {sum(len(s.collections) for s in shipped.systems)} collection(s)"


def test_check_offline_accepts_the_shipped_map_without_connecting():
    code, out, err = run("check", "--offline", "--file", SHIPPED)
    assert code == 0 and err == ""
    assert f"Data map {SHIPPED} is valid: {_shipped_counts()}" in out
    assert "Connections not tested (--offline)." in out


def test_check_lists_every_problem_with_file_line_system_collection_and_field(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(BROKEN_MAP)
    code, out, err = run("check", "--offline", "--file", path)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert f"{path}:5: system 'shop' › connection: 'password' looks like a secret" in err
    assert any(
        line.startswith(f"{path}:11: system 'shop' › collection 'customer' › field 'email': unknown category 'emails'")
        for line in lines
    )
    assert f"{path}:12: system 'shop' › collection 'orders': cannot be reached from any identity" in err
    assert lines[-1] == f"The data map {path} does not validate: 3 problem(s)."


def test_check_of_an_unreadable_map_exits_1(tmp_path):
    code, _out, err = run("check", "--offline", "--file", tmp_path / "missing.yaml")
    assert code == 1 and "cannot be read" in err


class _Reachable(Connector):
    kind = "sql"

    def find(self, subject):
        return Found()

    def export(self, subject, sink):
        return Exported()

    def health(self):
        return Health(ok=True, detail="connected", latency_ms=1.5)


class _Unreachable(_Reachable):
    kind = "http"

    def health(self):
        raise ConnectorError("connection refused by pay.example.com")


@pytest.fixture
def configured_map(settings, tmp_path):
    path = tmp_path / "datamap.yaml"
    path.write_bytes(SHIPPED.read_bytes())
    settings.DSR_DATAMAP = str(path)
    return path


def _connectors(monkeypatch, **kinds):
    """Every kind answers (a manual system has no connector: its owner answers) unless given."""
    for kind in ("sql", "django", "http"):
        monkeypatch.setitem(connectors.CONNECTORS, kind, kinds.get(kind, _Reachable))
    monkeypatch.delitem(connectors.CONNECTORS, "manual", raising=False)


@pytest.mark.django_db
def test_check_tests_each_connection_records_it_and_names_the_failing_systems(configured_map, monkeypatch):
    _connectors(monkeypatch, http=_Unreachable)
    shipped = datamap_load(SHIPPED)
    failing = [s.name for s in shipped.systems if s.kind == "http"]
    assert "payments" in failing
    code, out, err = run("check")
    assert code == 1
    assert err.strip() == f"{len(failing)} of {len(shipped.systems)} system(s) failing: {', '.join(failing)}."
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["shop"].split()[1:4] == ["sql", "ok", "1.5"] and lines["shop"].endswith("connected")
    assert lines["payments"].split()[1:3] == ["http", "FAILING"]
    assert lines["payments"].endswith("connection refused by pay.example.com")
    assert (
        "ok" in lines["crm_spreadsheet"].split()
        and "answered by its owner, sales@example.com" in lines["crm_spreadsheet"]
    )
    recorded = {h.system: h for h in SystemHealth.objects.all()}
    assert set(recorded) == set(shipped.system_names)
    assert recorded["shop"].ok and recorded["shop"].latency_ms == 1.5
    assert not recorded["payments"].ok and "refused" in recorded["payments"].detail
    assert recorded["crm_spreadsheet"].ok


@pytest.mark.django_db
def test_check_exits_0_only_when_every_system_answers(configured_map, monkeypatch):
    _connectors(monkeypatch)
    systems = len(datamap_load(SHIPPED).systems)
    code, out, err = run("check")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == f"All {systems} system(s) answer."
    assert SystemHealth.objects.filter(ok=True).count() == systems


@pytest.mark.django_db
def test_a_kind_without_a_connector_fails_with_a_clear_message(configured_map, monkeypatch):
    _connectors(monkeypatch)
    monkeypatch.delitem(connectors.CONNECTORS, "sql")
    sql_systems = [s.name for s in datamap_load(SHIPPED).systems if s.kind == "sql"]
    code, out, err = run("check")
    assert code == 1 and f"failing: {', '.join(sql_systems)}." in err
    assert "no connector is installed for kind 'sql', so this system cannot be searched" in out
    assert SystemHealth.objects.get(system="shop").ok is False


@pytest.mark.django_db
def test_checking_another_file_than_the_configured_map_records_nothing(settings, tmp_path, monkeypatch):
    settings.DSR_DATAMAP = str(tmp_path / "configured.yaml")
    _connectors(monkeypatch)
    code, out, _err = run("check", "--file", SHIPPED)
    assert code == 0
    assert "Not recorded on the dashboard: this is not the configured map (DSR_DATAMAP)." in out
    assert SystemHealth.objects.count() == 0


# --- show --------------------------------------------------------------------------------------


def test_show_prints_every_system_of_the_shipped_map_with_all_it_declares():
    code, out, err = run("show", "--file", SHIPPED)
    assert code == 0 and err == ""
    datamap = datamap_load(SHIPPED)
    blocks = out.split("\n\n")
    assert blocks[0].splitlines() == [
        f"Data map: {SHIPPED}",
        f"Version:  {datamap.version} (SHA-256 of the file)",
        f"Systems:  {len(datamap.systems)}",
    ]
    assert [b.splitlines()[0] for b in blocks[1:]] == [f"{s.name} — {s.kind}" for s in datamap.systems]
    assert {"shop — sql", "payments — http", "crm_spreadsheet — manual"} <= {b.splitlines()[0] for b in blocks[1:]}
    for system, block in zip(datamap.systems, blocks[1:], strict=True):
        assert f"Owner:       {system.owner}" in block
        for category in system.categories:
            assert f"{category_label(category)} [{category}]" in block
        for text in (*system.sources, *system.purposes, *(r.name for r in system.recipients)):
            assert text in block
        assert f"Retention:   {system.retention}" in block
        for reference in system.references:
            assert str(reference) in block
        for collection in system.collections:
            assert f"    {collection.name} (" in block
            for kind, column in collection.identities.items():
                assert f"{kind} = {column}" in block
            if collection.dated_by:
                assert f"dated by:  {collection.dated_by}" in block
            for f in collection.fields:
                assert f"      {f.name} " in block or block.endswith(f"      {f.name}")
    lines = out.splitlines()
    card = next(line for line in lines if line.strip().startswith("card_number "))
    assert "customer_records" in card and "never disclosed" in card
    body = next(line for line in lines if line.strip().startswith("body "))
    assert "others' data" in body and "provided" in body
    email = next(line for line in lines if line.strip().startswith("email ") and "erasure" in line)
    assert "erasure: null" in email
    shop_block = next(b for b in blocks[1:] if b.startswith("shop — "))
    shop = datamap.system("shop")
    assert shop and shop.shared and not shop.sold and "Sold/shared: not sold; shared" in shop_block
    for recipient in shop.recipients:
        line = next(line for line in shop_block.splitlines() if f"{recipient.name} ({recipient.category})" in line)
        assert line.endswith(" — shared") == recipient.shared
    assert "found by:  through customer.id -> orders.customer_id" in shop_block


def test_show_json_is_machine_readable_complete_and_stable():
    code, out, err = run("show", "--file", SHIPPED, "--format", "json")
    assert code == 0 and err == ""
    assert run("show", "--file", SHIPPED, "--format", "json")[1] == out, "the same map prints the same bytes"
    described = json.loads(out)
    datamap = datamap_load(SHIPPED)
    assert list(described) == ["format", "path", "version", "systems"]
    assert (described["format"], described["version"]) == (1, datamap.version)
    assert [s["name"] for s in described["systems"]] == list(datamap.system_names)
    shop = described["systems"][0]
    assert list(shop) == [
        "name", "kind", "owner", "description", "connection", "categories", "sources", "purposes", "recipients",
        "sold", "shared", "retention", "references", "search_order", "collections",
    ]  # fmt: skip
    assert shop["connection"] == datamap.system("shop").connection and "dsn_env" in shop["connection"]  # type: ignore[union-attr]
    assert {"slug": "identifiers", "label": category_label("identifiers")} in shop["categories"]
    assert shop["shared"] is True and shop["sold"] is False
    assert shop["search_order"][0] == "customer"
    orders = next(c for c in shop["collections"] if c["name"] == "orders")
    assert orders["identities"] == {} and orders["dated_by"] == "ordered_at" and orders["location"] == "orders"
    payments = next(s for s in described["systems"] if s["name"] == "payments")
    card = next(f for c in payments["collections"] for f in c["fields"] if f["name"] == "card_number")
    assert card == {
        "name": "card_number",
        "category": "customer_records",
        "personal": True,
        "provided": False,
        "never_disclose": True,
        "others_data": False,
        "erasure": None,
        "keep_reason": None,
        "corrects": None,
        "description": "",
    }


def test_show_of_a_broken_map_exits_1_with_its_problems(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(BROKEN_MAP)
    code, out, err = run("show", "--file", path, "--format", "json")
    assert code == 1 and out == "" and "unknown category 'emails'" in err


def test_show_defaults_to_the_configured_map(configured_map):
    code, out, _err = run("show")
    assert code == 0 and out.startswith(f"Data map: {configured_map}\n")


# --- import-fides ------------------------------------------------------------------------------


def test_import_fides_round_trip_keeps_systems_identities_references_categories_and_flags(tmp_path):
    output = tmp_path / "imported.yaml"
    code, out, err = run("import-fides", FIDES_FILE, "--output", output, "--owner", "privacy@example.com")
    assert code == 0 and out == ""
    assert f"Written to {output}." in err
    imported = datamap_load(output)
    assert imported.system_names == ("webshop_db", "mailing_list")
    shop, mailing = imported.systems
    assert (shop.kind, shop.owner) == ("sql", "privacy@example.com")
    assert shop.connection == {"dsn_env": "WEBSHOP_DB_DSN", "schema": "shop"}
    assert shop.description == "Customers, their orders, addresses, cards, logins and loyalty profiles."
    assert [c.name for c in shop.collections] == [
        "customer",
        "address",
        "orders",
        "payment_card",
        "login",
        "loyalty_profile",
    ]
    # identities: fides_meta.identity email and phone_number
    assert shop.collection("customer").identities == {"email": "email", "phone": "mobile"}
    assert mailing.collection("subscribers").identities == {"email": "address"}
    assert all(not c.identities for c in shop.collections[1:])
    # references: `to` and `from` directions, an older fidesops_meta block, one with no direction
    assert {str(r) for r in shop.references} == {
        "customer.address_id -> address.id",
        "customer.id -> orders.customer_id",
        "customer.id -> payment_card.customer_id",
        "customer.id -> login.customer_id",
        "customer.id -> loyalty_profile.customer_id",
    }
    assert [c.name for c in shop.search_order()][0] == "customer"
    # primary keys
    assert [c.primary_key for c in shop.collections] == ["id", "id", "order_id", "id", "id", "id"]
    assert mailing.collection("subscribers").primary_key == "address"

    def field(collection, name):
        found = shop.collection(collection).field(name)
        assert found is not None, name
        return found

    expected = {
        ("customer", "email"): ("identifiers", False),
        ("customer", "mobile"): ("identifiers", False),
        ("customer", "tax_number"): ("sensitive_personal_information", True),
        ("customer", "birthday"): ("protected_classifications", False),
        ("customer", "created"): ("none", False),
        ("address", "street"): ("identifiers", False),
        ("orders", "placed_at"): ("commercial_information", False),
        ("payment_card", "card_number"): ("customer_records", True),
        ("payment_card", "holder_name"): ("customer_records", False),
        ("payment_card", "bank_iban"): ("customer_records", True),
        ("login", "password_hash"): ("sensitive_personal_information", True),
        ("login", "fingerprint_template"): ("biometric_information", True),
        ("login", "last_ip"): ("identifiers", False),
        ("loyalty_profile", "home_area"): ("geolocation_data", False),
        ("loyalty_profile", "segment"): ("inferences", False),
        ("loyalty_profile", "kids"): ("customer_records", False),
        ("loyalty_profile", "preferences"): ("geolocation_data", False),
    }
    assert {key: (field(*key).category, field(*key).never_disclose) for key in expected} == expected
    assert field("customer", "email").provided and not field("loyalty_profile", "segment").provided
    assert field("customer", "full_name").erasure == "null"
    assert mailing.collection("subscribers").field("topics").category == "internet_activity"  # type: ignore[union-attr]
    # what did not map is on stderr, with its place, and at the top of the file for its reviewer
    reported = [
        "dataset 'webshop_db' › collection 'customer' › field 'crm_id': the reference to crm.contacts.id crosses into another dataset",
        "dataset 'webshop_db' › collection 'loyalty_profile' › field 'kids': Fides category 'user.childrens' has no CCPA equivalent",
        "dataset 'webshop_db' › collection 'loyalty_profile' › field 'preferences': nested fields (preferences.newsletter, preferences.favourite_store)",
        "dataset 'webshop_db': the reference payment_card.customer_id – customer.id has no direction",
        "dataset 'webshop_db' › collection 'login': 'after' has no equivalent here",
    ]  # fmt: skip
    written = output.read_text()
    for note in reported:
        assert f"{FIDES_FILE}: {note}" in err
        assert f"#  - {note}" in written
    assert "no --owner given" not in err


def test_import_fides_to_stdout_prints_the_same_map_and_keeps_notes_on_stderr(tmp_path):
    output = tmp_path / "imported.yaml"
    assert run("import-fides", FIDES_FILE, "--output", output)[0] == 0
    code, out, err = run("import-fides", FIDES_FILE)
    assert code == 0
    assert out == output.read_text()
    assert yaml.safe_load(out)["systems"][0]["owner"] == "data-owner@example.com"
    assert "no --owner given: every system's owner is written as data-owner@example.com; set it" in err
    assert err.splitlines()[-1].startswith(f"Converted {FIDES_FILE}: 2 system(s), 7 collection(s);")


def test_import_fides_refuses_to_overwrite_without_force(tmp_path):
    output = tmp_path / "datamap.yaml"
    output.write_text("# the reviewed map\n")
    code, out, err = run("import-fides", FIDES_FILE, "--output", output)
    assert code == 1 and out == ""
    assert err.strip() == f"{output} exists; give --force to overwrite it."
    assert output.read_text() == "# the reviewed map\n"
    assert run("import-fides", FIDES_FILE, "--output", output, "--force")[0] == 0
    assert datamap_load(output).system_names == ("webshop_db", "mailing_list")
    assert [p.name for p in tmp_path.iterdir()] == ["datamap.yaml"], "no temporary file left behind"


UNREACHABLE_ONLY_ACROSS_DATASETS = textwrap.dedent(
    """\
    dataset:
      - fides_key: mongo_profiles
        collections:
          - name: customer_details
            fields:
              - name: _id
                data_categories: [system.operations]
              - name: customer_id
                data_categories: [user.unique_id]
                fides_meta:
                  references:
                    - {dataset: postgres_shop, field: customer.id, direction: from}
              - name: gender
                data_categories: [user.demographic.gender]
    """
)


def test_import_fides_refuses_a_map_that_would_not_load_and_writes_nothing(tmp_path):
    source = tmp_path / "mongo.yml"
    source.write_text(UNREACHABLE_ONLY_ACROSS_DATASETS)
    output = tmp_path / "datamap.yaml"
    code, out, err = run("import-fides", source, "--output", output, "--owner", "team@example.com")
    assert code == 1 and out == ""
    assert "crosses into another dataset" in err
    assert "system 'mongo_profiles' › collection 'customer_details': cannot be reached from any identity" in err
    assert err.strip().endswith("nothing written. Fix the Fides file or write those parts of the map by hand.")
    assert not output.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("dataset:\n  - fides_key: x\n   collections: []\n", "line 3: not valid YAML"),
        ("systems:\n  - name: shop\n", "a Fides dataset file is a mapping with a 'dataset' list"),
        ("dataset: []\n", "the 'dataset' list is empty"),
        ("dataset:\n  - name: no key\n", "no dataset could be converted"),
    ],
    ids=["yaml syntax", "our own format", "empty", "no fides_key"],
)
def test_import_fides_of_a_file_that_is_not_a_fides_dataset_exits_1(tmp_path, content, message):
    source = tmp_path / "input.yml"
    source.write_text(content)
    code, out, err = run("import-fides", source)
    assert code == 1 and out == ""
    assert f"{source} is not a Fides dataset file we can import: " in err and message in err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--owner", "the team"], "--owner 'the team' is not an email address."),
        (
            ["--dsn-env", "postgres://u:p@db/shop"],
            "is the name of an environment variable (A-Z, 0-9, _), not its value.",
        ),
        (["--dsn-env", "SHOP_DSN"], "--dsn-env names one variable but"),
        (["--kind", "http", "--dsn-env", "SHOP_DSN"], "--dsn-env is for --kind sql."),
        (["--output", "/nonexistent-dir/map.yaml"], "/nonexistent-dir is not a directory."),
    ],
    ids=["owner", "dsn value", "dsn for two datasets", "dsn for http", "no such directory"],
)
def test_import_fides_bad_options_exit_1_with_the_reason(options, message):
    code, out, err = run("import-fides", FIDES_FILE, *options)
    assert code == 1 and out == "" and message in err


def test_import_fides_of_a_missing_file_exits_1(tmp_path):
    code, _out, err = run("import-fides", tmp_path / "nowhere.yml")
    assert code == 1 and "cannot be read" in err


@pytest.mark.parametrize("kind", ["http", "manual"])
def test_import_fides_as_another_kind_loads(tmp_path, kind):
    output = tmp_path / "map.yaml"
    assert run("import-fides", FIDES_FILE, "--kind", kind, "--output", output, "--owner", "a@example.com")[0] == 0
    shop = datamap_load(output).systems[0]
    assert shop.kind == kind
    if kind == "http":
        assert shop.connection == {"url_env": "WEBSHOP_DB_URL", "secret_env": "WEBSHOP_DB_SECRET"}


def test_an_imported_map_passes_check_offline(tmp_path):
    output = tmp_path / "map.yaml"
    run("import-fides", FIDES_FILE, "--output", output, "--owner", "a@example.com", "--force")
    code, out, _err = run("check", "--offline", "--file", output)
    assert code == 0 and "is valid: 2 system(s), 7 collection(s)" in out


def test_import_fides_of_one_dataset_uses_the_dsn_variable_given(tmp_path):
    source = tmp_path / "crm.yml"
    source.write_text(
        textwrap.dedent(
            """\
            dataset:
              - fides_key: crm
                collections:
                  - name: contact
                    fields:
                      - {name: id, data_categories: [system.operations]}
                      - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
            """
        )
    )
    output = tmp_path / "map.yaml"
    code, _out, err = run(
        "import-fides", source, "--dsn-env", "CRM_READONLY_DSN", "--owner", "crm@example.com", "--output", output
    )
    assert code == 0, err
    [crm] = datamap_load(output).systems
    assert (crm.connection, crm.owner) == ({"dsn_env": "CRM_READONLY_DSN"}, "crm@example.com")


def test_show_says_where_each_kind_keeps_a_collection(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            systems:
              - name: accounts
                owner: web@example.com
                kind: django
                collections:
                  - name: profile
                    model: accounts.Profile
                    identities: {email: email}
                    fields: {id: none, email: identifiers, notes: {category: customer_records, others_data: true}}
              - name: sales
                owner: sales@example.com
                kind: manual
                collections:
                  - name: leads
                    table: Leads sheet
                    primary_key: email
                    identities: {email: email}
                    fields:
                      email: identifiers
                      kept: {category: commercial_information, erasure: keep, keep_reason: "Tax law, 7 years"}
            """
        )
    )
    code, out, err = run("show", "--file", path)
    assert (code, err) == (0, "")
    assert "    profile (model accounts.Profile, primary key id)" in out
    assert "    leads (called Leads sheet there, primary key email)" in out
    assert "Connection:  (none)" in out and "Sources:     (none given)" in out
    kept = next(line for line in out.splitlines() if line.strip().startswith("kept "))
    assert kept.endswith("erasure: keep (Tax law, 7 years)")

"""The data map loader: the shipped map loads; every way a map can be wrong is refused with the file,
system, collection, field and line named; the version is the SHA-256 of the file's bytes; loading is
cached per version of the file and safe across threads."""

import copy
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dsr.fulfilment import datamap as datamap_module
from dsr.fulfilment.categories import CCPA_CATEGORIES
from dsr.fulfilment.datamap import (
    Collection,
    DataMap,
    DataMapError,
    Field,
    Problem,
    Reference,
    System,
    datamap_load,
    datamap_parse,
)

SHIPPED = Path(settings.BASE_DIR) / "config" / "datamap.yaml"


def valid_map() -> dict:
    """A small map that loads: a customer found by email, orders reached from it, one http system."""
    return {
        "version": 1,
        "systems": [
            {
                "name": "shop",
                "owner": "team@example.com",
                "kind": "sql",
                "connection": {"dsn_env": "SHOP_DSN"},
                "recipients": [{"name": "Carriers", "category": "Service providers", "shared": False}],
                "references": ["customer.id -> orders.customer_id"],
                "collections": [
                    {
                        "name": "customer",
                        "identities": {"email": "email"},
                        "fields": {
                            "id": "none",
                            "email": {"category": "identifiers", "provided": True},
                            "ssn": {"category": "sensitive_personal_information", "never_disclose": True},
                        },
                    },
                    {
                        "name": "orders",
                        "dated_by": "ordered_at",
                        "fields": {"id": "none", "customer_id": "none", "ordered_at": "commercial_information"},
                    },
                ],
            },
            {
                "name": "payments",
                "owner": "finance@example.com",
                "kind": "http",
                "connection": {"url_env": "PAY_URL", "secret_env": "PAY_SECRET"},
                "collections": [
                    {
                        "name": "cards",
                        "identities": {"email": "email"},
                        "fields": {"id": "none", "email": "identifiers"},
                    }
                ],
            },
        ],
    }


def dump(document) -> bytes:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()


def problems_of(content: bytes | dict, path: str = "test-map.yaml") -> list[Problem]:
    if isinstance(content, dict):
        content = dump(content)
    with pytest.raises(DataMapError) as caught:
        datamap_parse(content, path=path)
    assert caught.value.path == path
    assert all(str(p) in str(caught.value) and f"{path}: " in str(caught.value) for p in caught.value.problems)
    return caught.value.problems


def shop(document: dict) -> dict:
    return document["systems"][0]


def customer(document: dict) -> dict:
    return shop(document)["collections"][0]


def orders(document: dict) -> dict:
    return shop(document)["collections"][1]


@pytest.fixture(params=["libyaml", "pure python"])
def either_yaml_parser(request, monkeypatch):
    """The YAML-level checks hold on libyaml's parser (used when installed) and on PyYAML's own."""
    if request.param == "pure python":
        monkeypatch.setattr(datamap_module, "_MapLoader", datamap_module._PureMapLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    else:
        assert issubclass(datamap_module._MapLoader, yaml.CSafeLoader)
    return request.param


# --- What loads --------------------------------------------------------------------------------


def test_the_small_map_loads_into_the_public_types():
    loaded = datamap_parse(dump(valid_map()), path="small.yaml")
    assert isinstance(loaded, DataMap) and loaded.path == "small.yaml"
    assert loaded.system_names == ("shop", "payments")
    system = loaded.system("shop")
    assert isinstance(system, System) and loaded.system("nobody") is None
    assert system.references == (Reference("customer", "id", "orders", "customer_id"),)
    assert isinstance(system.collection("customer"), Collection)
    ssn = system.collection("customer").field("ssn")
    assert isinstance(ssn, Field) and ssn.never_disclose and ssn.personal
    assert system.collection("customer").identities == {"email": "email"}
    assert system.collection("orders").dated_by == "ordered_at"
    assert system.categories == ("commercial_information", "identifiers", "sensitive_personal_information")
    assert [c.name for c in system.search_order()] == ["customer", "orders"]


def test_the_shipped_map_loads_with_every_system_kind():
    loaded = datamap_load(SHIPPED)
    assert {"shop", "payments", "crm_spreadsheet"} <= set(loaded.system_names)
    assert {"sql", "http", "manual"} <= {s.kind for s in loaded.systems}
    assert loaded.version == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    shop_system = loaded.system("shop")
    assert shop_system and shop_system.search_order()[0].name == "customer"
    assert shop_system.shared and not shop_system.sold
    payments = loaded.system("payments")
    assert payments and payments.collection("payment_methods").field("card_number").never_disclose  # type: ignore[union-attr]
    for system in loaded.systems:
        assert set(system.categories) <= set(CCPA_CATEGORIES)
        assert all(c.identities or system.references_into(c.name) for c in system.collections)


def test_search_order_visits_each_collection_after_every_one_that_references_it():
    document = valid_map()
    shop(document)["collections"].append(
        {
            "name": "items",
            "fields": {"id": "none", "order_id": "none", "customer_id": "none", "what": "commercial_information"},
        }
    )
    shop(document)["references"] = [
        "orders.id -> items.order_id",
        "customer.id -> items.customer_id",
        "customer.id -> orders.customer_id",
    ]
    system = datamap_parse(dump(document)).system("shop")
    assert system and [c.name for c in system.search_order()] == ["customer", "orders", "items"]


def test_the_version_is_the_sha256_of_the_files_bytes_so_a_comment_changes_it():
    content = dump(valid_map())
    assert datamap_parse(content).version == hashlib.sha256(content).hexdigest()
    assert datamap_parse(content + b"# reviewed\n").version == hashlib.sha256(content + b"# reviewed\n").hexdigest()
    assert datamap_parse(content).version != datamap_parse(content + b"# reviewed\n").version


def test_yaml_anchors_and_merges_are_not_mistaken_for_repeated_keys(either_yaml_parser):
    content = b"""
x-carrier: &carrier {name: Carriers, category: Service providers}
systems:
  - name: shop
    owner: team@example.com
    kind: manual
    recipients:
      - <<: *carrier
        name: Parcel carriers
    collections:
      - name: leads
        identities: {email: email}
        fields: {id: none, email: identifiers}
"""
    # the top level allows no `x-` keys: the anchor must live in an allowed place
    assert [p.message for p in problems_of(content)] == ["unknown key 'x-carrier' (expected one of: systems, version)"]
    content = content.replace(b"x-carrier: &carrier {name: Carriers, category: Service providers}\n", b"")
    content = content.replace(
        b"      - <<: *carrier\n        name: Parcel carriers",
        b"      - &carrier {name: Carriers, category: Service providers}\n      - <<: *carrier\n        name: Parcel carriers",
    )
    loaded = datamap_parse(content)
    assert [r.name for r in loaded.systems[0].recipients] == ["Carriers", "Parcel carriers"]


# --- What does not load, and where it says the problem is ------------------------------------------

Mutation = Callable[[dict], object]


def _set(target: Callable[[dict], dict], key: str, value) -> Mutation:
    return lambda d: target(d).__setitem__(key, value)


def _drop(target: Callable[[dict], dict], key: str) -> Mutation:
    return lambda d: target(d).pop(key)


def _field_set(name: str, value) -> Mutation:
    return lambda d: customer(d)["fields"].__setitem__(name, value)


def _connection(value) -> Mutation:
    return _set(shop, "connection", value)


# (mutation, the problem's system, collection, field, and a part of its message)
CASES: dict[str, tuple[Mutation, str, str, str, str]] = {
    # unknown keys, at every level
    "unknown top-level key": (_set(lambda d: d, "sytems", []), "", "", "", "unknown key 'sytems'"),
    "unknown system key": (_set(shop, "ower", "x@example.com"), "shop", "", "", "unknown key 'ower'"),
    "unknown collection key": (_set(customer, "identity", "email"), "shop", "customer", "", "unknown key 'identity'"),
    "unknown field key": (_field_set("email", {"category": "identifiers", "secret": True}), "shop", "customer", "email", "unknown key 'secret'"),
    "unknown recipient key": (lambda d: shop(d)["recipients"][0].update(sold_to="x"), "shop", "", "", "unknown key 'sold_to'"),
    "unknown connection setting": (_connection({"dsn_env": "SHOP_DSN", "host": "db"}), "shop", "", "", "unknown setting 'host' for a sql system"),
    "wrong format version": (_set(lambda d: d, "version", 2), "", "", "", "'version' is the format's version: 1"),
    # missing what is required
    "no systems": (_set(lambda d: d, "systems", []), "", "", "", "'systems' is required"),
    "no owner": (_drop(shop, "owner"), "shop", "", "", "'owner' is required"),
    "no kind": (_drop(shop, "kind"), "shop", "", "", "'kind' is required"),
    "no collections": (_set(shop, "collections", []), "shop", "", "", "'collections' is required"),
    "no fields": (_drop(customer, "fields"), "shop", "customer", "", "'fields' is required"),
    "no category": (_field_set("email", {"provided": True}), "shop", "customer", "email", "'category' is required"),
    "no recipient name": (lambda d: shop(d)["recipients"][0].pop("name"), "shop", "", "", "'name' is required"),
    "sql without dsn_env": (_connection({"statement_timeout_ms": 100}), "shop", "", "", "'dsn_env' is required for a sql system"),
    "http without secret": (lambda d: d["systems"][1]["connection"].pop("secret_env"), "payments", "", "", "'secret_env' is required"),
    "http without url": (lambda d: d["systems"][1]["connection"].pop("url_env"), "payments", "", "", "needs 'url' or 'url_env'"),
    "django without model": (_set(shop, "kind", "django"), "shop", "customer", "", "'model' is required"),
    "collection without name": (lambda d: customer(d).pop("name"), "shop", "", "", "'name' is required"),
    # names
    "system name with capitals": (_set(shop, "name", "Shop"), "", "", "", "'name' is required: lower-case"),
    "collection name with a dash": (_set(customer, "name", "cust-omer"), "shop", "", "", "lower-case letters"),
    "field name with a space": (_field_set("e mail", "identifiers"), "shop", "customer", "e mail", "letters, digits and underscores"),
    "table with a schema dot": (_set(customer, "table", "public.customer"), "shop", "customer", "", "'table' is letters"),
    "django model not app.Model": (
        lambda d: (shop(d).update(kind="django", connection={}), customer(d).update(model="Customer"), orders(d).update(model="shop.Order")),
        "shop", "customer", "", "'model' is 'app_label.ModelName'",
    ),
    "table on a django system": (
        lambda d: (shop(d).update(kind="django", connection={}), customer(d).update(model="shop.Customer", table="customer"), orders(d).update(model="shop.Order")),
        "shop", "customer", "", "'table' is for sql systems",
    ),
    "model on a sql system": (_set(customer, "model", "shop.Customer"), "shop", "customer", "", "'model' is for django systems only"),
    # duplicates
    "system named twice": (lambda d: d["systems"].append(copy.deepcopy(shop(d))), "shop", "", "", "named twice"),
    "collection named twice": (lambda d: shop(d)["collections"].append(copy.deepcopy(customer(d))), "shop", "customer", "", "named twice in this system"),
    # secrets
    "password inline": (_connection({"dsn_env": "SHOP_DSN", "password": "hunter2"}), "shop", "", "", "'password' looks like a secret"),
    "dsn inline": (_connection({"dsn": "postgresql://reader:hunter2@db/shop"}), "shop", "", "", "'dsn' looks like a secret"),
    "api token inline": (_connection({"dsn_env": "SHOP_DSN", "api_token": "abc"}), "shop", "", "", "'api_token' looks like a secret"),
    "dsn in the env setting": (_connection({"dsn_env": "postgresql://reader:hunter2@db/shop"}), "shop", "", "", "is the name of an environment variable"),
    "credentials in an http url": (
        lambda d: d["systems"][1].update(connection={"url": "https://user:pw@pay.example.com/dsr", "secret_env": "PAY_SECRET"}),
        "payments", "", "", "'url' must not carry a user, password or token",
    ),
    "token in an http url's query": (
        lambda d: d["systems"][1].update(connection={"url": "https://pay.example.com/dsr?api_key=abc", "secret_env": "PAY_SECRET"}),
        "payments", "", "", "'url' must not carry",
    ),
    "a setting named by a number": (_connection({"dsn_env": "SHOP_DSN", 1: "x"}), "shop", "", "", "a setting's name is text"),
    "negative timeout": (_connection({"dsn_env": "SHOP_DSN", "statement_timeout_ms": -1}), "shop", "", "", "must be a positive number"),
    # vocabularies
    "unknown kind": (_set(shop, "kind", "mongodb"), "shop", "", "", "unknown kind 'mongodb' (one of: sql, django, http, manual)"),
    "unknown field category": (_field_set("email", "contact_details"), "shop", "customer", "email", "unknown category 'contact_details'"),
    "unknown system category": (_set(shop, "categories", ["identifiers", "emails"]), "shop", "", "", "unknown category 'emails'"),
    "system categories missing the fields'": (_set(shop, "categories", ["identifiers"]), "shop", "", "", "the fields hold commercial_information, sensitive_personal_information"),
    "bad owner email": (_set(shop, "owner", "the shop team"), "shop", "", "", "owner 'the shop team' is not an email address"),
    "flag not a boolean": (_field_set("email", {"category": "identifiers", "provided": "yes please"}), "shop", "customer", "email", "'provided' must be true or false"),
    "sources not a list of texts": (_set(shop, "sources", [1, 2]), "shop", "", "", "'sources' must be a list of texts"),
    # references
    "reference syntax": (_set(shop, "references", ["customer.id => orders.customer_id"]), "shop", "", "", "is not 'collection.field -> collection.field'"),
    "reference to an unknown collection": (_set(shop, "references", ["customer.id -> order.customer_id"]), "shop", "", "", "no collection 'order' in this system"),
    "reference to an unknown field": (_set(shop, "references", ["customer.id -> orders.client_id"]), "shop", "orders", "", "collection 'orders' has no field 'client_id'"),
    "reference listed twice": (_set(shop, "references", ["customer.id -> orders.customer_id"] * 2), "shop", "", "", "listed twice"),
    "reference to itself": (
        lambda d: (customer(d)["fields"].update(referrer_id="none"), shop(d)["references"].append("customer.id -> customer.referrer_id")),
        "shop", "", "", "a reference from a collection to itself",
    ),
    "references in a loop": (
        lambda d: (orders(d).update(identities={"email": "email"}), orders(d)["fields"].update(email="identifiers"), customer(d)["fields"].update(last_order="none"), shop(d)["references"].append("orders.id -> customer.last_order")),
        "shop", "", "", "the references loop through: customer, orders",
    ),
    "collection unreachable": (_set(shop, "references", []), "shop", "orders", "", "cannot be reached from any identity"),
    # identities, dated_by, primary key
    "identity names an unknown field": (_set(customer, "identities", {"email": "mail"}), "shop", "customer", "", "identity 'email' names 'mail', not one of its fields"),
    "unknown identity kind": (_set(customer, "identities", {"email": "email", "ssn": "ssn"}), "shop", "customer", "", "unknown identity kind 'ssn'"),
    "identity that is never disclosed": (_set(customer, "identities", {"email": "email", "customer_number": "ssn"}), "shop", "customer", "ssn", "never_disclose"),
    "identity that is not personal": (_set(customer, "identities", {"email": "email", "account_id": "id"}), "shop", "customer", "id", "so it is personal information"),
    "identities not a mapping": (_set(customer, "identities", ["email"]), "shop", "customer", "", "'identities' maps an identity kind to a field"),
    "dated_by unknown": (_set(orders, "dated_by", "created_at"), "shop", "orders", "", "dated_by 'created_at' is not one of its fields"),
    "primary key unknown": (_set(orders, "primary_key", "order_id"), "shop", "orders", "", "primary_key 'order_id' is not one of its fields"),
    # field flags
    "never_disclose on a non-personal field": (_field_set("id", {"category": "none", "never_disclose": True}), "shop", "customer", "id", "a never-disclosed field is personal information"),
    "others_data on a non-personal field": (_field_set("id", {"category": "none", "others_data": True}), "shop", "customer", "id", "(others_data) is personal information"),
    "erasure strategy unknown": (_field_set("email", {"category": "identifiers", "erasure": "shred"}), "shop", "customer", "email", "unknown erasure strategy 'shred'"),
    "keep without keep_reason": (_field_set("email", {"category": "identifiers", "erasure": "keep"}), "shop", "customer", "email", "'erasure: keep' needs a 'keep_reason'"),
    "keep_reason without keep": (_field_set("email", {"category": "identifiers", "erasure": "null", "keep_reason": "tax law"}), "shop", "customer", "email", "'keep_reason' belongs with 'erasure: keep'"),
    "field spec not a mapping": (_field_set("email", ["identifiers"]), "shop", "customer", "email", "give the field's category"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_wrong_map_is_refused_naming_the_system_collection_field_and_line(case):
    mutation, system, collection, field, message = CASES[case]
    document = valid_map()
    mutation(document)
    found = problems_of(document)
    matching = [
        p for p in found if message in p.message and (p.system, p.collection, p.field) == (system, collection, field)
    ]
    assert matching, f"expected {(system, collection, field, message)} among {[(p.where, p.message) for p in found]}"
    assert all(p.line for p in matching), "every problem says on which line"


def test_the_line_is_the_one_the_problem_is_on(either_yaml_parser):
    content = b"""systems:
  - name: shop
    owner: team@example.com
    kind: sql
    connection: {dsn_env: SHOP_DSN}
    collections:
      - name: customer
        identities: {email: email}
        fields:
          id: none
          email: identifiers
          phone: telephone
"""
    [problem] = problems_of(content)
    assert (problem.line, problem.system, problem.collection, problem.field) == (12, "shop", "customer", "phone")
    assert str(problem).startswith("line 12: system 'shop' › collection 'customer' › field 'phone': unknown category")


def test_a_field_named_twice_is_caught_though_yaml_would_keep_the_last(either_yaml_parser):
    content = b"""systems:
  - name: shop
    owner: team@example.com
    kind: manual
    collections:
      - name: leads
        identities: {email: email}
        fields:
          email: identifiers
          notes: professional_information
          email: {category: identifiers, never_disclose: true}
"""
    problems = problems_of(content)
    assert [(p.line, p.field, p.message) for p in problems if "twice" in p.message] == [
        (11, "email", "named twice in this collection (first on line 9)")
    ]


def test_a_key_given_twice_in_a_system_is_caught(either_yaml_parser):
    content = dump(valid_map())
    assert content.count(b"\n  owner: team@example.com\n") == 1
    content = content.replace(
        b"\n  owner: team@example.com\n", b"\n  owner: team@example.com\n  owner: other@example.com\n"
    )
    problems = problems_of(content)
    assert [(p.system, p.message) for p in problems] == [("shop", "'owner' is given twice (first on line 4)")]


@pytest.mark.parametrize(
    "content, line, message",
    [
        (b"systems:\n  - name: shop\n   owner: x@example.com\n", 3, "not valid YAML"),
        (b"systems:\n  - name: [shop\n", 3, "not valid YAML"),
        (b"systems:\n  - name: !!python/object:os.system shop\n", 2, "not valid YAML"),
        (b"systems:\n  - {[a]: 1}\n", 2, "not valid YAML"),
    ],
    ids=["indentation", "unclosed bracket", "python tag", "list as a key"],
)
def test_a_yaml_syntax_error_names_its_line(either_yaml_parser, content, line, message):
    [problem] = problems_of(content)
    assert problem.line == line and message in problem.message


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"# only a comment\n", "the file is empty"),
        (b"- name: shop\n", "the map is a mapping with a 'systems' list, not a list"),
        (b"just some text\n", "not a text"),
        (b"systems: shop\n", "'systems' is required: a list of at least one system"),
        ("systèmes: [\n".encode("latin-1"), "the file is not UTF-8 text"),
    ],
    ids=["empty", "comment only", "a list", "text", "systems not a list", "latin-1"],
)
def test_a_file_that_is_not_a_map_says_what_it_is(either_yaml_parser, content, message):
    [problem] = problems_of(content)
    assert message in problem.message


def test_a_byte_order_mark_is_fine(either_yaml_parser):
    assert datamap_parse("\ufeff".encode() + dump(valid_map())).system_names == ("shop", "payments")


def test_every_problem_is_reported_at_once_not_only_the_first():
    document = valid_map()
    shop(document)["owner"] = "nobody"
    customer(document)["fields"]["email"] = "emails"
    document["systems"][1]["kind"] = "soap"
    problems = problems_of(document)
    assert {p.system for p in problems} == {"shop", "payments"}
    assert len(problems) >= 3
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems), "in file order"


def test_problems_are_plain_data_for_the_command_and_the_dashboard():
    document = valid_map()
    customer(document)["fields"]["email"] = "emails"
    [problem] = problems_of(document)
    assert problem.as_dict() == {
        "line": problem.line,
        "system": "shop",
        "collection": "customer",
        "field": "email",
        "detail": "",
        "message": problem.message,
    }
    assert problem.where == "system 'shop' › collection 'customer' › field 'email'"


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=8)
        | st.sampled_from(["sql", "email", "id", "none"]),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "owner",
                        "kind",
                        "connection",
                        "collections",
                        "fields",
                        "identities",
                        "references",
                        "dsn_env",
                        1,
                    ]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_document_either_loads_or_is_refused_with_problems_never_a_crash(system):
    document = {"systems": [system]}
    try:
        datamap_parse(yaml.safe_dump(document).encode())
    except DataMapError as error:
        assert error.problems and all(isinstance(p, Problem) and p.message for p in error.problems)


# --- Loading a file: cached per version, safe across threads ----------------------------------------


def test_loading_is_cached_until_the_file_changes(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_bytes(dump(valid_map()))
    first = datamap_load(path)
    assert datamap_load(path) is first
    assert datamap_load(str(path)) is first, "a str and a Path name one file"
    document = valid_map()
    document["systems"][1]["owner"] = "billing@example.com"
    path.write_bytes(dump(document))
    again = datamap_load(path)
    assert again is not first and again.system("payments").owner == "billing@example.com"  # type: ignore[union-attr]
    assert again.version == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_same_size_rewrite_with_the_old_mtime_is_still_a_new_version(tmp_path):
    path = tmp_path / "map.yaml"
    content = dump(valid_map())
    path.write_bytes(content)
    first = datamap_load(path)
    stat = path.stat()
    rewritten = content.replace(b"finance@example.com", b"finanse@example.com")
    assert len(rewritten) == len(content)
    replacement = tmp_path / "map.yaml.new"
    replacement.write_bytes(rewritten)
    os.replace(replacement, path)  # how an editor or a deploy swaps a file
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_size == stat.st_size
    assert datamap_load(path).version != first.version


def test_a_broken_map_is_not_cached_and_loads_once_fixed(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_bytes(b"systems: [\n")
    with pytest.raises(DataMapError):
        datamap_load(path)
    path.write_bytes(dump(valid_map()))
    assert datamap_load(path).system_names == ("shop", "payments")


def test_a_missing_file_is_a_problem_naming_it(tmp_path):
    with pytest.raises(DataMapError) as caught:
        datamap_load(tmp_path / "nowhere.yaml")
    assert caught.value.path.endswith("nowhere.yaml")
    assert "cannot be read" in caught.value.problems[0].message


def test_the_default_is_the_setting(settings, tmp_path):
    path = tmp_path / "configured.yaml"
    path.write_bytes(dump(valid_map()))
    settings.DSR_DATAMAP = str(path)
    assert datamap_load().path == str(path)


def test_threads_loading_at_once_parse_the_file_once_and_share_the_map(tmp_path, monkeypatch):
    path = tmp_path / "map.yaml"
    path.write_bytes(dump(valid_map()))
    parses = []
    real_parse = datamap_module.datamap_parse

    def counting_parse(content, *, path):
        parses.append(path)
        return real_parse(content, path=path)

    monkeypatch.setattr(datamap_module, "datamap_parse", counting_parse)
    threads_count = 16
    barrier = threading.Barrier(threads_count)
    results: list[DataMap] = []
    errors: list[BaseException] = []

    def load():
        barrier.wait()
        try:
            results.append(datamap_load(path))
        except BaseException as error:  # noqa: BLE001 - the assertion below reports it
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == threads_count and len({id(r) for r in results}) == 1
    assert parses == [str(path)]

"""The Fides dataset conversion (dsr/fulfilment/fides.py): Fides data categories to CCPA categories
and never-disclose flags, identities, reference directions, primary keys, nested fields, and a note
with its place for everything not carried over exactly."""

import textwrap

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dsr.fulfilment.categories import CCPA_CATEGORIES
from dsr.fulfilment.datamap import DataMapError, datamap_parse
from dsr.fulfilment.fides import CATEGORY_MAP, FidesFormatError, category_convert, fides_datamap_convert


@pytest.mark.parametrize(
    "fides, category, never_disclose",
    [
        ("user.contact.email", "identifiers", False),
        ("user.contact.address.street", "identifiers", False),
        ("user.contact.phone_number", "identifiers", False),
        ("user.name.first", "identifiers", False),
        ("user.financial", "customer_records", False),
        ("user.financial.bank_account", "customer_records", True),
        ("user.financial.credit_card", "customer_records", True),
        ("user.financial.account_number", "customer_records", True),
        ("user.government_id", "sensitive_personal_information", True),
        ("user.government_id.passport_number", "sensitive_personal_information", True),
        ("user.authorization.credentials", "sensitive_personal_information", True),
        ("user.authorization.password", "sensitive_personal_information", True),
        ("user.credentials.password", "sensitive_personal_information", True),
        ("user.biometric", "biometric_information", True),
        ("user.biometric.voice", "biometric_information", True),
        ("user.health_and_medical.insurance_beneficiary_id", "sensitive_personal_information", True),
        ("user.health_and_medical", "sensitive_personal_information", False),
        ("user.location", "geolocation_data", False),
        ("user.location.precise", "geolocation_data", False),
        ("user.device.ip_address", "identifiers", False),
        ("user.behavior.browsing_history", "internet_activity", False),
        ("user.behavior.purchase_history", "commercial_information", False),
        ("user.demographic.gender", "protected_classifications", False),
        ("user.demographic.race_ethnicity", "sensitive_personal_information", False),
        ("user.demographic.profile", "inferences", False),
        ("user.job_title", "professional_information", False),
        ("user.sensor", "sensory_data", False),
        ("system.operations", "none", False),
        ("system.authentication", "none", False),
        # the older taxonomy spelled the origin into the name
        ("user.provided.identifiable.contact.email", "identifiers", False),
        ("user.provided.identifiable.financial.account_number", "customer_records", True),
        ("user.provided.identifiable.credentials.password", "sensitive_personal_information", True),
        ("user.derived.identifiable.location", "geolocation_data", False),
        ("user.derived.identifiable.device.ip_address", "identifiers", False),
    ],
)
def test_fides_categories_map_to_ccpa_categories_and_never_disclose(fides, category, never_disclose):
    mapped = category_convert(fides)
    assert (mapped.category, mapped.never_disclose, mapped.exact) == (category, never_disclose, True)


def test_the_provided_flag_follows_what_the_person_gave_or_was_observed():
    assert category_convert("user.contact.email").provided
    assert category_convert("user.behavior.search_history").provided  # observed
    assert not category_convert("user.demographic.profile").provided  # inferred
    assert not category_convert("user.unique_id").provided  # assigned by the system
    assert category_convert("user.provided.identifiable.gender").provided
    assert not category_convert("user.derived.identifiable.gender").provided


@pytest.mark.parametrize(
    "fides, never_disclose",
    [("user", False), ("user.childrens", False), ("custom.loyalty.tier", False), ("custom.security_question", True)],
)
def test_a_category_with_no_equivalent_is_written_as_the_fallback_and_marked_inexact(fides, never_disclose):
    mapped = category_convert(fides)
    assert (mapped.category, mapped.never_disclose, mapped.exact) == ("customer_records", never_disclose, False)


def test_every_category_the_table_names_is_a_ccpa_category():
    assert {c for c, _, _ in CATEGORY_MAP.values()} <= {*CCPA_CATEGORIES, "none"}


def convert(text: str, **options):
    imported = fides_datamap_convert(textwrap.dedent(text), source="test.yml", **options)
    notes = [str(n) for n in imported.notes]
    return imported, notes


# Shaped like Fides' own Postgres example: employees and service requests with two email
# identities, orders -> order items -> products, addresses reached with `to` references.
POSTGRES_LIKE = """
dataset:
  - fides_key: postgres_example
    collections:
      - name: employee
        fields:
          - {name: id, data_categories: [user.unique_id], fides_meta: {primary_key: true}}
          - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - name: address_id
            data_categories: [system.operations]
            fides_meta: {references: [{dataset: postgres_example, field: address.id, direction: to}]}
      - name: service_request
        fields:
          - {name: id, data_categories: [system.operations]}
          - {name: alt_email, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - {name: email, data_categories: [system.operations], fides_meta: {identity: email}}
          - name: employee_id
            data_categories: [user.unique_id]
            fides_meta: {references: [{dataset: postgres_example, field: employee.id, direction: from}]}
      - name: address
        fields:
          - {name: id, data_categories: [system.operations]}
          - {name: city, data_categories: [user.contact.address.city]}
      - name: Order_Item
        fields:
          - {name: id, data_categories: [system.operations]}
          - name: employee_id
            fides_meta: {references: [{dataset: postgres_example, field: employee.id, direction: from}]}
          - name: product_id
            fides_meta: {references: [{dataset: postgres_example, field: product.id, direction: to}]}
      - name: product
        fields:
          - {name: id, data_categories: [system.operations]}
          - {name: name, data_categories: [system.operations]}
"""


def test_a_postgres_like_dataset_converts_into_a_map_that_loads():
    imported, notes = convert(POSTGRES_LIKE, owner="team@example.com")
    loaded = datamap_parse(imported.yaml_text().encode())
    [system] = loaded.systems
    assert system.name == "postgres_example"
    assert system.collection("employee").identities == {"email": "email"}
    assert system.collection("service_request").identities == {"email": "alt_email"}
    assert any("collection 'service_request' › field 'email': a second 'email' identity" in n for n in notes)
    assert {str(r) for r in system.references} == {
        "employee.address_id -> address.id",
        "employee.id -> service_request.employee_id",
        "employee.id -> order_item.employee_id",
        "order_item.product_id -> product.id",
    }
    item = system.collection("order_item")
    assert item.location == "Order_Item", "the name is made a map name, the table keeps its own"
    assert [c.name for c in system.search_order()].index("order_item") < [c.name for c in system.search_order()].index(
        "product"
    )


def test_a_reference_without_direction_is_followed_away_from_the_identities():
    imported, notes = convert(
        """
        dataset:
          - fides_key: shop
            collections:
              - name: orders
                fields:
                  - {name: id, data_categories: [system.operations]}
                  - name: customer_id
                    fides_meta: {references: [{dataset: shop, field: customer.id}]}
                  - name: voucher_id
                    fides_meta: {references: [{dataset: shop, field: voucher.id}]}
              - name: voucher
                fields:
                  - {name: id, data_categories: [system.operations]}
                  - {name: code, data_categories: [user.financial]}
              - name: customer
                fields:
                  - {name: id, data_categories: [user.unique_id]}
                  - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
        """,
        owner="team@example.com",
    )
    system = datamap_parse(imported.yaml_text().encode()).systems[0]
    assert {str(r) for r in system.references} == {
        "customer.id -> orders.customer_id",
        "orders.voucher_id -> voucher.id",
    }
    assert sum("has no direction; followed as" in n for n in notes) == 2


def test_what_a_flat_map_cannot_hold_is_noted_with_its_place():
    imported, notes = convert(
        """
        dataset:
          - fides_key: mongo_test
            retention: Two years after the last order.
            collections:
              - name: customer
                fields:
                  - {name: _id, data_categories: [system.operations]}
                  - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
                  - name: login_id
                    data_categories: [system.operations]
                    fides_meta: {identity: login_id}
                  - {name: parent_id, fides_meta: {references: [{dataset: mongo_test, field: customer._id, direction: to}]}}
                  - name: profile
                    fides_meta: {data_type: object}
                    fields:
                      - name: alt_email
                        data_categories: [user.contact.email]
                        fides_meta: {identity: email}
                      - name: ssn
                        data_categories: [user.government_id.national_identification_number]
                  - name: "First Name"
                    data_categories: [user.name]
                  - name: pin
                    data_categories: [user.account]
                  - name: token
                    data_categories: [user.contact]
                    fides_meta: {masking_strategy_override: {strategy: aes_encrypt}, read_only: true}
                  - name: weird
                    data_categories: [user.contact.email]
                    fides_meta: {references: [{dataset: mongo_test, field: customer.profile.alt_email, direction: sideways}]}
              - name: archive
                fides_meta: {skip_processing: true}
                fields:
                  - {name: id}
        system:
          - fides_key: ignored
        """
    )
    where = "dataset 'mongo_test' › collection 'customer' › field "
    expected = [
        "the file's 'system' section is not a dataset; ignored",
        "no --owner given: every system's owner is written as data-owner@example.com; set it",
        where + "'login_id': identity 'login_id' has no equivalent",
        where + "'profile': identity 'email' on the nested field 'profile.alt_email' cannot be searched",
        where + "'profile': nested fields (profile.alt_email, profile.ssn) are classified as the one field 'profile' "
        "(sensitive_personal_information, never disclosed)",
        where + "'First Name': the name cannot be written in this map",
        where + "'pin': the name suggests a secret but no category says so",
        where + "'token': masking strategy 'aes_encrypt' has no erasure equivalent",
        where + "'token': read-only in Fides: give it 'erasure: keep'",
        "dataset 'mongo_test' › collection 'archive': skip_processing in Fides: left out of the map",
        where + "'parent_id': the reference to 'customer._id' stays in its own collection",
        where + "'weird': the reference to 'customer.profile.alt_email' names a nested field",
    ]
    for note in expected:
        assert any(n.startswith(note) for n in notes), (note, notes)
    system = datamap_parse(imported.yaml_text().encode()).systems[0]
    assert system.retention == "Two years after the last order."
    customer = system.collection("customer")
    assert [c.name for c in system.collections] == ["customer"]
    assert customer.primary_key == "_id"
    assert customer.field("profile").never_disclose  # type: ignore[union-attr]
    assert customer.field("First Name") is None
    assert customer.identities == {"email": "email"}


def test_an_identity_field_without_a_category_is_personal_and_a_never_disclosed_one_is_no_identity():
    imported, notes = convert(
        """
        dataset:
          - fides_key: crm
            collections:
              - name: contact
                fields:
                  - {name: id, data_categories: [system.operations]}
                  - {name: email, fides_meta: {identity: email}}
                  - {name: ssn, data_categories: [user.government_id], fides_meta: {identity: customer_number}}
        """,
        owner="team@example.com",
    )
    contact = datamap_parse(imported.yaml_text().encode()).systems[0].collection("contact")
    assert contact.identities == {"email": "email"}
    assert contact.field("email").category == "identifiers"  # type: ignore[union-attr]
    assert any("field 'email': is the 'email' identity, so it is personal information" in n for n in notes)
    assert any("field 'ssn': is the 'customer_number' identity but its category is never disclosed" in n for n in notes)


def test_several_primary_key_fields_and_none_are_noted():
    imported, notes = convert(
        """
        dataset:
          - fides_key: ledger
            collections:
              - name: entry
                fields:
                  - {name: book, fides_meta: {primary_key: true}}
                  - {name: line, fides_meta: {primary_key: true}}
                  - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
              - name: note
                fields:
                  - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
                  - {name: body, data_categories: [user.content.private]}
        """,
        owner="team@example.com",
    )
    system = datamap_parse(imported.yaml_text().encode()).systems[0]
    assert system.collection("entry").primary_key == "book"
    assert system.collection("note").primary_key == "email"
    assert any("a primary key of several fields (book, line); 'book' used" in n for n in notes)
    assert any("collection 'note': no primary key given; 'email' used" in n for n in notes)


@pytest.mark.parametrize(
    "text, message",
    [
        (b"\xff\xfe", "not UTF-8"),
        ("dataset: [\n", "not valid YAML"),
        ("- 1\n", "a Fides dataset file is a mapping"),
        ("dataset:\n  - fides_key: x\n    collections: []\n", "no dataset could be converted"),
    ],
)
def test_a_file_that_is_no_fides_dataset_is_refused(text, message):
    with pytest.raises(FidesFormatError) as caught:
        fides_datamap_convert(text)
    assert message in str(caught.value)


def test_the_generated_file_starts_with_the_notes_as_comments_for_its_reviewer():
    imported, notes = convert(POSTGRES_LIKE)
    text = imported.yaml_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header[0].startswith("# Data map imported from the Fides dataset file test.yml")
    assert [line[len("#  - ") :] for line in header if line.startswith("#  - ")] == notes


_names = st.sampled_from(["id", "email", "customer_id", "Orders", "orders", "customer", "x y", "_id", "phone"])
_categories = st.lists(
    st.sampled_from(
        ["user.contact.email", "system.operations", "user.financial.credit_card", "user", "user.unique_id"]
    ),
    max_size=3,
)
_reference = st.fixed_dictionaries(
    {"field": st.sampled_from(["customer.id", "orders.customer_id", "Orders.id", "a.b.c", "x"])},
    optional={"dataset": st.sampled_from(["ds", "other"]), "direction": st.sampled_from(["to", "from", "", "up"])},
)
_meta = st.fixed_dictionaries(
    {},
    optional={
        "identity": st.sampled_from(["email", "phone_number", "custom"]),
        "primary_key": st.booleans(),
        "references": st.lists(_reference, max_size=2),
        "masking_strategy_override": st.fixed_dictionaries({"strategy": st.sampled_from(["null_rewrite", "aes"])}),
    },
)
_field = st.recursive(
    st.fixed_dictionaries({"name": _names}, optional={"data_categories": _categories, "fides_meta": _meta}),
    lambda children: st.fixed_dictionaries({"name": _names, "fields": st.lists(children, max_size=3)}),
    max_leaves=6,
)
_collection = st.fixed_dictionaries({"name": _names, "fields": st.lists(_field, max_size=5)})
_dataset = st.fixed_dictionaries(
    {"fides_key": st.sampled_from(["ds", "other", "Bad Key"]), "collections": st.lists(_collection, max_size=5)}
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(_dataset, min_size=1, max_size=2))
def test_any_fides_file_converts_or_is_refused_and_the_result_loads_or_says_why(datasets):
    try:
        imported = fides_datamap_convert(yaml.safe_dump({"dataset": datasets}))
    except FidesFormatError:
        return
    try:
        datamap_parse(imported.yaml_text().encode())
    except DataMapError as error:
        assert error.problems

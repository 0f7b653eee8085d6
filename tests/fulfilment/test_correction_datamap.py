"""The data map's `corrects: <word>`: which field holds the intake's correction field. An unknown
word, two fields of a collection claiming one word, the primary key or a field that is not
personal information are problems with file and line, at load and at `dsr_datamap check`."""

import io
import textwrap

import pytest
from django.core.management import call_command

from dsr.fulfilment.datamap import DataMapError, correction_words, datamap_parse
from dsr.services.intake import CORRECTABLE_FIELDS

MAP = textwrap.dedent(
    """\
    systems:
      - name: shop
        owner: team@example.com
        kind: sql
        connection: {dsn_env: SHOP_DSN}
        collections:
          - name: customer
            identities: {email: email}
            fields:
              id: none
              email: {category: identifiers, corrects: email}
              name: {category: identifiers, corrects: full_name}
              nickname: {category: identifiers}
              city: {category: customer_records, corrects: postal_address}
    """
)


def problems(text: str) -> list[str]:
    with pytest.raises(DataMapError) as refused:
        datamap_parse(text.encode(), path="map.yaml")
    return [str(p) for p in refused.value.problems]


def test_the_words_are_the_request_forms_correction_fields_but_something_else():
    assert set(correction_words()) == set(CORRECTABLE_FIELDS) - {"other"}


def test_a_declared_field_is_found_by_its_word():
    customer = datamap_parse(MAP.encode()).system("shop").collection("customer")
    assert customer.field_correcting("full_name").name == "name"
    assert customer.field_correcting("phone") is None
    assert customer.field("nickname").corrects == ""


def test_an_unknown_word_is_a_problem_on_its_line():
    found = problems(MAP.replace("corrects: full_name", "corrects: surname"))
    assert found == [
        "line 12: system 'shop' › collection 'customer' › field 'name': unknown correction field 'surname' "
        f"(one of the request form's: {', '.join(correction_words())})"
    ]


def test_two_fields_of_a_collection_claiming_one_word_is_a_problem_on_the_second():
    found = problems(
        MAP.replace("nickname: {category: identifiers}", "nickname: {category: identifiers, corrects: full_name}")
    )
    assert found == [
        "line 13: system 'shop' › collection 'customer' › field 'nickname': 'corrects: full_name' is claimed by "
        "field 'name' of this collection too: one field per correction"
    ]


def test_the_key_and_a_field_that_is_not_personal_cannot_be_corrected():
    found = problems(MAP.replace("id: none", "id: {category: identifiers, corrects: customer_number}"))
    assert "line 10: system 'shop' › collection 'customer' › field 'id': is the primary key" in found[0]
    found = problems(MAP.replace("nickname: {category: identifiers}", "nickname: {category: none, corrects: phone}"))
    assert found == [
        "line 13: system 'shop' › collection 'customer' › field 'nickname': a field a person can correct is "
        "personal information: give its category"
    ]


def test_dsr_datamap_check_names_the_file_and_line(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(MAP.replace("corrects: postal_address", "corrects: address"))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("dsr_datamap", "check", "--offline", "--file", str(path), stdout=out, stderr=err)
    assert exit_.value.code == 1
    assert f"{path}:14: system 'shop' › collection 'customer' › field 'city': unknown correction field" in (
        err.getvalue() + out.getvalue()
    )


def test_dsr_datamap_show_prints_what_a_field_corrects(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(MAP)
    out = io.StringIO()
    call_command("dsr_datamap", "show", "--file", str(path), stdout=out)
    assert "corrects: full_name" in out.getvalue()
    out = io.StringIO()
    call_command("dsr_datamap", "show", "--file", str(path), "--format", "json", stdout=out)
    assert '"corrects": "postal_address"' in out.getvalue()

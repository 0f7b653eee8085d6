"""The duplicate check and the search by address use the index on the lower-cased address on every
database (issue 12: on SQLite `email__iexact` became a LIKE that scanned the table inside the write
lock): the query plans name the index, and the look-ups still ignore case."""

import pytest
from django.db import connection

from dsr.selectors import requests_list
from dsr.services.intake import open_requests_of
from tests.factories import request_create

pytestmark = pytest.mark.django_db


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: ask whether an index can serve
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_the_duplicate_check_uses_the_address_index_and_ignores_case():
    first = request_create(email="Ann.Lee@Example.org", request_type="access")
    request_create(email="someone@example.org", request_type="access")
    found = open_requests_of("  ann.lee@EXAMPLE.org ", "access")
    assert list(found) == [first]
    plan = _plan(found)
    assert "dsr_req_email_key_type" in plan, plan
    assert "SCAN dsr_datasubjectrequest" not in plan and "Seq Scan" not in plan, plan


def test_the_search_by_address_finds_any_case():
    first = request_create(email="Ann.Lee@Example.org")
    assert list(requests_list(filters={"search": "ANN.LEE@example.ORG"})) == [first]

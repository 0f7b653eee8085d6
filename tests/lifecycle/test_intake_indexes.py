"""The duplicate check and the search by address use the index on the lower-cased address on every
database (issue 12: on SQLite `email__iexact` became a LIKE that scanned the table inside the write
lock): the query plans name the index, and the look-ups still ignore case."""

import re

import pytest
from django.db import connection

from dsr.selectors import requests_list
from dsr.services.intake import open_requests_of
from tests.factories import request_create, request_denied_create

pytestmark = pytest.mark.django_db


def _plan(queryset, *, order: bool = False) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A tiny table: ask whether an index can serve (a plan that still scans or sorts cannot).
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort") if order else ("enable_seqscan",):
                cursor.execute(f"SET LOCAL {setting} = off")
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


def _many_others(n: int = 60):
    """Enough other people's requests that the planner's statistics tell the indexes apart."""
    for i in range(n):
        request_create(email=f"other{i}@example.org", request_type="access" if i % 2 else "erasure")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE dsr_datasubjectrequest")


def test_the_duplicate_check_uses_the_address_index_and_ignores_case():
    first = request_create(email="Ann.Lee@Example.org", request_type="access")
    _many_others()
    found = open_requests_of("  ann.lee@EXAMPLE.org ", "access")
    assert list(found) == [first]
    plan = _plan(found.order_by())
    assert "dsr_req_email_key_type" in plan, plan
    assert "SCAN dsr_datasubjectrequest" not in plan and "Seq Scan" not in plan, plan


def test_the_search_by_address_finds_any_case():
    first = request_create(email="Ann.Lee@Example.org")
    assert list(requests_list(filters={"search": "ANN.LEE@example.ORG"})) == [first]


def _index_scan(queryset, index: str) -> str:
    plan = _plan(queryset, order=True)
    assert index in plan, plan
    # SQLite: "SCAN … USING INDEX" walks the index in order (LIMIT stops it early); a bare SCAN reads the table.
    assert "Seq Scan" not in plan and not re.search(r"SCAN dsr_datasubjectrequest(?! USING)", plan), plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan and "Sort" not in plan, plan
    return plan


def test_the_staff_list_reads_its_order_from_an_index():
    _many_others(5)
    _index_scan(requests_list(filters={})[:50], "dsr_req_due_id")


@pytest.mark.postgres
def test_the_queue_reads_the_open_requests_in_order_from_their_partial_index(officer):
    from dsr.models import OPEN_STATUSES, DataSubjectRequest
    from dsr.selectors import queue_requests

    # Most requests are closed, as in a queue with history: the open ones' partial index is the one.
    for i in range(40):
        request_denied_create(officer=officer, email=f"closed{i}@example.org")
    _many_others(5)
    _index_scan(queue_requests(filters={}, user=officer)[:50], "dsr_req_open_due_id")
    # The partial index names the open statuses: it must stay the same list as the queue's.
    (index,) = [i for i in DataSubjectRequest._meta.indexes if i.name == "dsr_req_open_due_id"]
    assert set(dict(index.condition.children)["status__in"]) == set(OPEN_STATUSES)

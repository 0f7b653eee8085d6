"""The legal clock (dsr/clock.py): a table of real dates checked by hand, and properties.

Holiday facts used below, from the `holidays` package: US-CA 2026 — Jul 3 (Independence Day
observed), Nov 26-27 (Thanksgiving and the day after), Dec 25; 2027-01-01. SE 2026 — Apr 3 Good
Friday, Apr 6 Easter Monday, May 14 Ascension, Dec 25-26; 2027-01-01.
"""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr import clock
from dsr.clock import (
    BusinessCalendar,
    ClockError,
    add_months,
    calendar_for,
    deadlines_compute,
    extension_check,
    local_date,
)

CA = calendar_for("US-CA")
SE = calendar_for("SE")
WEEKENDS = calendar_for("")


def compute(regime, request_type, received_on, **kw):
    return deadlines_compute(
        regime=regime, request_type=request_type, received_on=received_on, ccpa_calendar=CA, gdpr_calendar=SE, **kw
    )


# --- calendar months --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start,months,expected",
    [
        (date(2026, 3, 5), 1, date(2026, 4, 5)),
        (date(2026, 8, 31), 1, date(2026, 9, 30)),  # no 31 September: last day of the month
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),  # across the year end
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2027, 11, 30), 3, date(2028, 2, 29)),
        (date(2026, 5, 31), -1, date(2026, 4, 30)),
    ],
)
def test_add_months(start, months, expected):
    assert add_months(start, months) == expected


# --- business days ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start,n,expected,why",
    [
        (date(2026, 11, 19), 10, date(2026, 12, 7), "skips Thanksgiving Thu 26 and the Friday after"),
        (date(2026, 7, 1), 10, date(2026, 7, 16), "skips Fri 3 July, Independence Day observed"),
        (date(2026, 3, 7), 10, date(2026, 3, 20), "received on a Saturday: Monday is day 1"),
        (date(2026, 12, 22), 10, date(2027, 1, 7), "skips Christmas and New Year's Day"),
        (date(2026, 11, 16), 15, date(2026, 12, 9), "15 business days across Thanksgiving"),
        (date(2026, 11, 20), 1, date(2026, 11, 23), "Friday + 1 = Monday"),
        (date(2026, 11, 21), 0, date(2026, 11, 21), "day 0 is the day itself"),
    ],
)
def test_ccpa_business_days(start, n, expected, why):
    assert CA.add_business_days(start, n) == expected, why


def test_weekend_only_and_swedish_calendars_differ_over_christmas():
    assert WEEKENDS.add_business_days(date(2026, 12, 18), 10) == date(2027, 1, 1)
    assert SE.add_business_days(date(2026, 12, 18), 10) == date(2027, 1, 5)


def test_roll_forward():
    assert SE.roll_forward(date(2026, 4, 5)) == date(2026, 4, 7)  # Easter Sunday, then Easter Monday
    assert SE.roll_forward(date(2026, 9, 30)) == date(2026, 9, 30)
    assert WEEKENDS.roll_forward(date(2026, 12, 26)) == date(2026, 12, 28)


def test_unknown_calendar_code_is_a_clear_error():
    with pytest.raises(ClockError, match="XX"):
        clock.calendar_from_code("XX", [2026])


def test_calendar_is_immutable_and_negative_days_refused():
    with pytest.raises(AttributeError):
        CA.name = "changed"
    with pytest.raises(ClockError):
        CA.add_business_days(date(2026, 1, 5), -1)


# --- deadlines by regime and type -------------------------------------------------------------------


@pytest.mark.parametrize(
    "received,ack,due,extended",
    [
        (date(2026, 11, 19), date(2026, 12, 7), date(2027, 1, 3), date(2027, 2, 17)),  # due on a Sunday: not rolled
        (date(2028, 1, 20), date(2028, 2, 3), date(2028, 3, 5), date(2028, 4, 19)),  # across 29 Feb 2028
        (date(2026, 12, 31), date(2027, 1, 15), date(2027, 2, 14), date(2027, 3, 31)),
    ],
)
def test_ccpa_know_delete_correct(received, ack, due, extended):
    for request_type in ("access", "access_specific", "erasure", "rectification"):
        d = compute("ccpa", request_type, received)
        assert (d.acknowledge_by, d.respond_by, d.original_respond_by, d.extendable) == (ack, due, due, True)
        e = compute("ccpa", request_type, received, extended=True)
        assert (e.respond_by, e.original_respond_by) == (extended, due)


def test_ccpa_never_pauses():
    assert compute("ccpa", "access", date(2026, 3, 2), paused_days=9).respond_by == date(2026, 4, 16)


@pytest.mark.parametrize("request_type", ["opt_out_sale", "limit_sensitive"])
def test_ccpa_opt_out_and_limit_fifteen_business_days(request_type):
    d = compute("ccpa", request_type, date(2026, 11, 16))
    assert (d.acknowledge_by, d.respond_by, d.extendable) == (None, date(2026, 12, 9), False)


def test_marketing_opt_out_ten_business_days_in_every_regime():
    assert compute("ccpa", "opt_out_marketing", date(2026, 11, 19)).respond_by == date(2026, 12, 7)
    assert compute("gdpr", "opt_out_marketing", date(2026, 12, 18)).respond_by == date(2027, 1, 5)
    assert compute("other", "opt_out_marketing", date(2026, 12, 18)).respond_by == date(2027, 1, 5)
    assert not compute("gdpr", "opt_out_marketing", date(2026, 12, 18)).extendable


@pytest.mark.parametrize(
    "received,due,why",
    [
        (date(2026, 3, 5), date(2026, 4, 7), "5 Apr is Easter Sunday, 6 Apr Easter Monday"),
        (date(2026, 8, 31), date(2026, 9, 30), "no 31 September"),
        (date(2026, 1, 31), date(2026, 3, 2), "28 Feb 2026 is a Saturday"),
        (date(2028, 1, 31), date(2028, 2, 29), "leap year, a Tuesday"),
        (date(2026, 11, 25), date(2026, 12, 28), "25-26 Dec holidays, then Sunday"),
        (date(2026, 11, 6), date(2026, 12, 7), "6 Dec is a Sunday"),
        (date(2026, 4, 14), date(2026, 5, 15), "14 May is Ascension Day"),
        (date(2026, 12, 1), date(2027, 1, 4), "New Year's Day is a Friday"),
    ],
)
def test_gdpr_one_month(received, due, why):
    for regime in ("gdpr", "other"):
        d = compute(regime, "erasure", received)
        assert (d.acknowledge_by, d.respond_by, d.original_respond_by) == (None, due, due), why


@pytest.mark.parametrize(
    "received,extended",
    [
        (date(2026, 3, 5), date(2026, 6, 5)),
        (date(2026, 11, 30), date(2027, 3, 1)),  # 28 Feb 2027 is a Sunday
        (date(2027, 11, 30), date(2028, 2, 29)),
    ],
)
def test_gdpr_two_further_months(received, extended):
    d = compute("gdpr", "access", received, extended=True)
    assert d.respond_by == extended
    assert d.original_respond_by == compute("gdpr", "access", received).respond_by


def test_gdpr_pause_moves_the_deadline_by_the_days_paused():
    # 2 Nov 2026 + 1 month = Wed 2 Dec; 2 paused days = Fri 4 Dec; 4 paused days = Sun 6 → Mon 7.
    assert compute("gdpr", "access", date(2026, 11, 2), paused_days=2).respond_by == date(2026, 12, 4)
    assert compute("gdpr", "access", date(2026, 11, 2), paused_days=4).respond_by == date(2026, 12, 7)
    assert compute("gdpr", "access", date(2026, 11, 2), paused_days=4).original_respond_by == date(2026, 12, 2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"regime": "mars"}, "regime"),
        ({"request_type": "teleport"}, "request type"),
        ({"received_on": datetime(2026, 1, 1, tzinfo=timezone.utc)}, "date"),
        ({"paused_days": -1}, "negative"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message):
    args = {"regime": "gdpr", "request_type": "access", "received_on": date(2026, 1, 5), **kwargs}
    with pytest.raises(ClockError, match=message):
        compute(args.pop("regime"), args.pop("request_type"), args.pop("received_on"), **args)


# --- time zones -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment,zone,expected",
    [
        (datetime(2026, 3, 8, 7, 59, tzinfo=timezone.utc), "America/Los_Angeles", date(2026, 3, 7)),  # 23:59 PST
        (datetime(2026, 3, 8, 10, 30, tzinfo=timezone.utc), "America/Los_Angeles", date(2026, 3, 8)),  # 03:30 PDT
        (datetime(2026, 11, 1, 7, 30, tzinfo=timezone.utc), "America/Los_Angeles", date(2026, 11, 1)),  # 00:30 PDT
        (datetime(2026, 11, 2, 7, 30, tzinfo=timezone.utc), "America/Los_Angeles", date(2026, 11, 1)),  # 23:30 PST
        (datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc), "Europe/Stockholm", date(2026, 3, 29)),  # 00:30 CET
        (datetime(2026, 10, 24, 22, 30, tzinfo=timezone.utc), "Europe/Stockholm", date(2026, 10, 25)),  # 00:30 CEST
        (datetime(2026, 12, 31, 20, 0, tzinfo=ZoneInfo("America/New_York")), "Europe/Amsterdam", date(2027, 1, 1)),
    ],
)
def test_local_date(moment, zone, expected):
    assert local_date(moment, zone) == expected


def test_local_date_refuses_naive_times_and_unknown_zones():
    with pytest.raises(ClockError, match="time zone"):
        local_date(datetime(2026, 1, 1, 12, 0), "Europe/Stockholm")
    with pytest.raises(ClockError, match="Mars/Olympus"):
        local_date(datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc), "Mars/Olympus")


# --- extensions -------------------------------------------------------------------------------------


def _extend(**kw):
    args = {
        "regime": "ccpa",
        "request_type": "access",
        "today": date(2026, 4, 16),
        "original_respond_by": date(2026, 4, 16),
        "already_extended": False,
        "reason": "Complex",
    }
    args.update(kw)
    extension_check(**args)


def test_extension_allowed_before_and_on_the_deadline_day():
    _extend(today=date(2026, 3, 1))
    _extend(today=date(2026, 4, 16))
    _extend(regime="gdpr", request_type="erasure")


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"today": date(2026, 4, 17)}, "2026-04-16 has passed"),
        ({"already_extended": True}, "already been extended"),
        ({"reason": "   "}, "needs a reason"),
        ({"request_type": "opt_out_sale"}, "cannot be extended"),
        ({"request_type": "limit_sensitive"}, "cannot be extended"),
        ({"regime": "gdpr", "request_type": "opt_out_marketing"}, "cannot be extended"),
    ],
)
def test_extension_refused(kw, message):
    with pytest.raises(ClockError, match=message):
        _extend(**kw)


# --- properties -------------------------------------------------------------------------------------

DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


@given(DATES, st.integers(min_value=-24, max_value=36))
@settings(max_examples=300)
def test_property_add_months_keeps_the_day_or_clamps(d, months):
    result = add_months(d, months)
    assert (result.year * 12 + result.month) - (d.year * 12 + d.month) == months
    assert result.day <= d.day
    if result.day < d.day:  # clamped: the day does not exist there, so it is the month's last day
        assert (result + timedelta(days=1)).day == 1


@given(DATES)
@settings(max_examples=300)
def test_property_gdpr_deadline_is_a_working_day_soon_after_one_month(received):
    d = compute("gdpr", "access", received)
    month = add_months(received, 1)
    assert SE.is_business_day(d.respond_by)
    assert month <= d.respond_by < month + timedelta(days=10)
    e = compute("gdpr", "access", received, extended=True)
    assert SE.is_business_day(e.respond_by) and e.respond_by > d.respond_by


@given(DATES)
@settings(max_examples=300)
def test_property_ccpa_45_and_90_days(received):
    d = compute("ccpa", "erasure", received)
    assert (d.respond_by - received).days == 45
    assert (compute("ccpa", "erasure", received, extended=True).respond_by - received).days == 90
    assert CA.is_business_day(d.acknowledge_by) and received < d.acknowledge_by < d.respond_by


@given(DATES, st.integers(min_value=1, max_value=40))
@settings(max_examples=300)
def test_property_business_days_count_exactly(start, n):
    end = CA.add_business_days(start, n)
    assert CA.is_business_day(end)
    counted = sum(CA.is_business_day(start + timedelta(days=k)) for k in range(1, (end - start).days + 1))
    assert counted == n
    assert CA.add_business_days(start, n + 1) > end


@given(DATES, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
@settings(max_examples=200)
def test_property_pauses_never_bring_a_deadline_earlier(received, a, b):
    low, high = sorted((a, b))
    assert (
        compute("gdpr", "access", received, paused_days=low).respond_by
        <= compute("gdpr", "access", received, paused_days=high).respond_by
    )

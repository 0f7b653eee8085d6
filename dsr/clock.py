"""The legal clock: pure deadline arithmetic, no ORM, no settings (RULES.md §2).

Deadlines are dates in the business's time zone. Callers turn the receipt timestamp into a local
date (`local_date`), pick the calendars, and store what `deadlines_compute` returns.
"""

from __future__ import annotations

import calendar as _calendar
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REGIMES = ("ccpa", "gdpr", "other")
REQUEST_TYPES = (
    "access",
    "access_specific",
    "portability",
    "rectification",
    "erasure",
    "restriction",
    "objection",
    "withdraw_consent",
    "opt_out_sale",
    "opt_out_marketing",
    "limit_sensitive",
)
CCPA_FIFTEEN_DAY_TYPES = frozenset({"opt_out_sale", "limit_sensitive"})
MARKETING_OPT_OUT = "opt_out_marketing"

CCPA_ACKNOWLEDGE_BUSINESS_DAYS = 10  # §7021(a)
CCPA_RESPONSE_DAYS = 45  # §7021(b)
CCPA_EXTENSION_DAYS = 45  # §1798.130(a)(2)(A): 90 days in all
CCPA_OPT_OUT_BUSINESS_DAYS = 15  # §7026(f), §7027
MARKETING_OPT_OUT_BUSINESS_DAYS = 10  # policy: "up to ten business days"
GDPR_RESPONSE_MONTHS = 1  # Art 12(3)
GDPR_EXTENDED_MONTHS = 3  # Art 12(3): two further months


class ClockError(ValueError):
    """A deadline cannot be computed or changed; the message says why, in a plain sentence."""


class BusinessCalendar:
    """Working days: Monday to Friday (by default) minus a set of public holidays."""

    __slots__ = ("_holidays", "name", "weekend")

    # Set once in __init__ (object.__setattr__, the class refuses later changes).
    _holidays: frozenset[date]
    name: str
    weekend: tuple[int, ...]

    def __init__(self, holidays: Iterable[date] = (), *, name: str = "", weekend: tuple[int, ...] = (5, 6)):
        object.__setattr__(self, "_holidays", frozenset(holidays))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "weekend", tuple(weekend))

    def __setattr__(self, key, value):
        raise AttributeError("BusinessCalendar is immutable")

    def __repr__(self):
        return f"BusinessCalendar({self.name or 'weekends only'}, {len(self._holidays)} holidays)"

    def is_business_day(self, d: date) -> bool:
        return d.weekday() not in self.weekend and d not in self._holidays

    def add_business_days(self, d: date, n: int) -> date:
        """The n-th business day after d; d itself is day 0 (Fri + 1 = Mon, Sat + 1 = Mon)."""
        if n < 0:
            raise ClockError("The number of business days cannot be negative.")
        current = d
        while n:
            current += timedelta(days=1)
            if self.is_business_day(current):
                n -= 1
        return current

    def roll_forward(self, d: date) -> date:
        """Reg. 1182/71 Art 3(4): a period ending on a weekend or holiday ends on the next working day."""
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d


def calendar_from_code(code: str, years: Iterable[int]) -> BusinessCalendar:
    """ "US-CA" (country-subdivision), "SE" (country) or "" (weekends only)."""
    code = (code or "").strip()
    if not code:
        return BusinessCalendar(name="")
    import holidays as holidays_package

    country, _, subdiv = code.partition("-")
    try:
        found = holidays_package.country_holidays(country.upper(), subdiv=subdiv.upper() or None, years=list(years))
    except (NotImplementedError, KeyError) as exc:
        raise ClockError(f"'{code}' is not a holiday calendar we know; use a code like US-CA, SE or NL.") from exc
    return BusinessCalendar(found.keys(), name=code.upper())


@functools.lru_cache(maxsize=32)
def calendar_for(code: str) -> BusinessCalendar:
    """A calendar covering 2000–2100, built once per code."""
    return calendar_from_code(code, range(2000, 2101))


def add_months(d: date, months: int) -> date:
    """Calendar months with end-of-month clamp: 31 Aug + 1 = 30 Sep (EDPB ¶160, Reg. 1182/71 Art 3(2)(c))."""
    index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = _calendar.monthrange(year, month)[1]
    return date(year, month, min(d.day, last))


def local_date(moment: datetime, tz_name: str) -> date:
    if not isinstance(moment, datetime):
        raise ClockError("A receipt time must be a date and time.")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ClockError("A receipt time must carry a time zone.")
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ClockError(f"'{tz_name}' is not a time zone name (use one like America/Los_Angeles).") from exc
    return moment.astimezone(zone).date()


@dataclass(frozen=True)
class Deadlines:
    acknowledge_by: date | None
    respond_by: date
    original_respond_by: date
    extendable: bool


def _check(regime: str, request_type: str) -> None:
    if regime not in REGIMES:
        raise ClockError(f"'{regime}' is not a regime; use one of {', '.join(REGIMES)}.")
    if request_type not in REQUEST_TYPES:
        raise ClockError(f"'{request_type}' is not a request type.")


def is_extendable(regime: str, request_type: str) -> bool:
    _check(regime, request_type)
    if request_type == MARKETING_OPT_OUT:
        return False
    if regime == "ccpa" and request_type in CCPA_FIFTEEN_DAY_TYPES:
        return False
    return True


def deadlines_compute(
    *,
    regime: str,
    request_type: str,
    received_on: date,
    ccpa_calendar: BusinessCalendar,
    gdpr_calendar: BusinessCalendar,
    extended: bool = False,
    paused_days: int = 0,
) -> Deadlines:
    _check(regime, request_type)
    if isinstance(received_on, datetime) or not isinstance(received_on, date):
        raise ClockError("The receipt day must be a date in the business time zone.")
    if paused_days < 0:
        raise ClockError("Paused days cannot be negative.")
    cal = ccpa_calendar if regime == "ccpa" else gdpr_calendar

    if request_type == MARKETING_OPT_OUT:
        due = cal.add_business_days(received_on, MARKETING_OPT_OUT_BUSINESS_DAYS)
        return Deadlines(None, due, due, False)

    if regime == "ccpa":
        if request_type in CCPA_FIFTEEN_DAY_TYPES:
            due = cal.add_business_days(received_on, CCPA_OPT_OUT_BUSINESS_DAYS)
            return Deadlines(None, due, due, False)
        acknowledge_by = cal.add_business_days(received_on, CCPA_ACKNOWLEDGE_BUSINESS_DAYS)
        # §7021(b): 45 calendar days whatever time verification takes — the clock never pauses,
        # and calendar days are not rolled to a business day.
        original = received_on + timedelta(days=CCPA_RESPONSE_DAYS)
        respond_by = original + timedelta(days=CCPA_EXTENSION_DAYS) if extended else original
        return Deadlines(acknowledge_by, respond_by, original, True)

    # GDPR, and "other", which takes the GDPR clock as the stricter default.
    original = cal.roll_forward(add_months(received_on, GDPR_RESPONSE_MONTHS))
    months = GDPR_EXTENDED_MONTHS if extended else GDPR_RESPONSE_MONTHS
    # EDPB ¶159 (check): a recorded pause moves the end of the period by the days paused.
    respond_by = cal.roll_forward(add_months(received_on, months) + timedelta(days=paused_days))
    return Deadlines(None, respond_by, original, True)


def extension_check(
    *,
    regime: str,
    request_type: str,
    today: date,
    original_respond_by: date,
    already_extended: bool,
    reason: str,
) -> None:
    """CCPA §1798.130(a)(2)(A): once, with notice and reason before day 45.
    GDPR Art 12(3): once, the subject told with reasons within the first month."""
    if not (reason or "").strip():
        raise ClockError("An extension needs a reason, which the requester will read.")
    extension_possible_check(
        regime=regime,
        request_type=request_type,
        today=today,
        original_respond_by=original_respond_by,
        already_extended=already_extended,
    )


def extension_possible_check(
    *, regime: str, request_type: str, today: date, original_respond_by: date, already_extended: bool
) -> None:
    """The rules of `extension_check` that do not depend on the reason: whether the deadline can be
    extended today at all (so that staff are offered an extension only when one is possible)."""
    if not is_extendable(regime, request_type):
        raise ClockError("This kind of request cannot be extended.")
    if already_extended:
        raise ClockError("The deadline has already been extended once; it cannot be extended again.")
    if today > original_respond_by:
        raise ClockError(
            f"The original deadline {original_respond_by.isoformat()} has passed; an extension must be sent before it."
        )

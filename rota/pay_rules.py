"""Pay by ordered rules (COMP_PAY_RULES) and pay per hour by kind (COMP_PAY_RATES): reading them,
and the pay they give a stretch of after-hours time.

One-off dates come first, then weekly rules, the first match paying each minute.
Rule windows are wall-clock minutes (bot/wall_clock.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

from bot.business_hours import DAY_NAMES, AfterHoursKind, BusinessCalendar, OpeningHours
from bot.wall_clock import split_intervals, wall_clock_stretches
from rota.load import LoadWeights, parse_load_weights

LedgerUnit = Literal["days", "money"]

_MICROSECOND = timedelta(microseconds=1)
_HOUR = timedelta(hours=1) // _MICROSECOND


_DAY_KINDS: tuple[AfterHoursKind, ...] = ("weeknight", "weekend", "holiday")
_MINUTES_PER_DAY = 24 * 60
Window = tuple[int, int]
"""Start and end of a time window, in minutes after local midnight; an end at or before the start is
next morning."""


@dataclass(frozen=True)
class PayRule:
    """One `MATCH = RATE` rule: `rate` money per hour for the after-hours time it matches.

    The days it matches: `dates` (first and last day of each range) for a one-off
    rule; otherwise `weekdays` (Monday is 0), a kind of day (`kind`), or, with
    neither, every day (`*`). `window` narrows each of those days to part of it;
    a window past midnight (22:00-06:00) belongs to the day it starts, so
    `fri 22:00-06:00` is Friday night into Saturday morning.
    """

    rate: Decimal
    dates: tuple[tuple[date, date], ...] = ()
    weekdays: frozenset[int] = frozenset()
    kind: AfterHoursKind | None = None
    window: Window | None = None
    text: str = ""  # as written in the setting, for messages

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal) or not self.rate.is_finite() or self.rate < 0:
            raise ValueError(f"the pay rate must be a Decimal of at least 0, got {self.rate!r}")
        if sum((bool(self.dates), bool(self.weekdays), self.kind is not None)) > 1:
            raise ValueError("a pay rule matches dates, weekdays or a kind of day, not several")
        if any(first > last for first, last in self.dates):
            raise ValueError("a date range ends before it starts")
        if not self.weekdays <= frozenset(range(7)):
            raise ValueError(f"weekdays run from 0 (Monday) to 6, got {sorted(self.weekdays)}")
        if self.window is not None:
            start, end = self.window
            if not (0 <= start < _MINUTES_PER_DAY and 0 < end <= _MINUTES_PER_DAY and start != end):
                raise ValueError(f"{self.window} is not a time window in minutes of a day")

    @property
    def one_off(self) -> bool:
        return bool(self.dates)

    def matches_day(self, weekday: int, kind: AfterHoursKind, day: date | None = None) -> bool:
        """Whether the rule picks a day; `day` None stands for any date, which no one-off rule picks."""
        if self.dates:
            return day is not None and any(first <= day <= last for first, last in self.dates)
        if self.weekdays:
            return weekday in self.weekdays
        return self.kind is None or self.kind == kind

    def wall_minutes(self, starts: bool, carries_over: bool) -> list[Window]:
        """The minutes of a local day the rule covers, read on the wall clock.

        `starts`: the rule picks this day; `carries_over`: it picks the day before,
        whose window may run past midnight into this one.
        """
        if self.window is None:
            return [(0, _MINUTES_PER_DAY)] if starts else []
        start, end = self.window
        if end > start:
            return [(start, end)] if starts else []
        covered = [(start, _MINUTES_PER_DAY)] if starts else []
        if carries_over and end > 0:
            covered.append((0, end))
        return covered

    def intervals(self, day: date, calendar: BusinessCalendar) -> list[tuple[datetime, datetime]]:
        """The stretches of real time (UTC) the rule covers because it picks local `day`."""
        if not self.matches_day(day.weekday(), _kind_of_day(calendar, day), day):
            return []
        midnight = datetime.combine(day, time(0))
        start, end = self.window or (0, _MINUTES_PER_DAY)
        if end <= start:
            end += _MINUTES_PER_DAY
        # The window is the wall-clock minutes it names: 22:00-06:00 is 9 real hours on
        # the October fall-back night and 7 on the March spring-forward one, and a window
        # ending at 02:30 that night holds both times the clock reads 02:00-02:29.
        return wall_clock_stretches(
            midnight + timedelta(minutes=start), midnight + timedelta(minutes=end), calendar.tz
        )


@dataclass(frozen=True)
class PayRules:
    """Pay by ordered rules: each after-hours minute earns the rate of the first rule that matches it.

    One-off rules (dates) are tried before weekly ones, wherever they are written,
    so a Christmas Eve rate beats `holiday` or `*`; within each group the written
    order decides. A minute no rule matches earns nothing (configuration refuses
    rules that leave after-hours time unpaid; see `unpaid_after_hours`).
    """

    rules: tuple[PayRule, ...]
    quantum: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("pay rules need at least one rule")
        check_positive(self.quantum, "rounding quantum")

    @property
    def unit(self) -> LedgerUnit:
        return "money"

    @property
    def in_order(self) -> tuple[PayRule, ...]:
        """The rules as they are tried: one-off rules, then weekly ones, each group as written."""
        return tuple(r for r in self.rules if r.one_off) + tuple(r for r in self.rules if not r.one_off)

    def exact_pay(self, start: datetime, end: datetime, calendar: BusinessCalendar) -> Fraction:
        """The exact pay for the after-hours time in [start, end)."""
        return sum(
            (self._stretch_pay(s.start, s.end, calendar) for s in calendar.after_hours(start, end)),
            Fraction(0),
        )

    def _stretch_pay(self, start: datetime, end: datetime, calendar: BusinessCalendar) -> Fraction:
        # Cut the stretch where local days and rule windows begin and end, not minute
        # by minute: each rule takes what earlier rules left, until nothing is left.
        first_day = calendar.local_day(start) - timedelta(days=1)  # its window may run into today
        days = [first_day + timedelta(days=n) for n in range((calendar.local_day(end) - first_day).days + 1)]
        unpaid = [(start, end)]
        pay = Fraction(0)
        for rule in self.in_order:
            if not unpaid:
                break
            cover = [interval for day in days for interval in rule.intervals(day, calendar)]
            matched, unpaid = split_intervals(unpaid, cover)
            matched_time = sum((b - a for a, b in matched), timedelta())
            pay += Fraction(matched_time // _MICROSECOND, _HOUR) * Fraction(rule.rate)
        return pay

    def unpaid_after_hours(self, hours: Mapping[int, OpeningHours | None], *, holidays: bool) -> str | None:
        """The first after-hours time of a week that no weekly rule pays, described; None when all is paid.

        Checked on the wall clock for every weekday, as each kind of day it can
        be (a holiday too when `holidays`), after each kind the day before can
        be, since a window past midnight carries over. One-off rules are left
        out: outside their dates the weekly rules still have to pay.
        """
        weekly = [rule for rule in self.rules if not rule.one_off]
        for weekday in range(7):
            yesterday = (weekday - 1) % 7
            for kind in _possible_kinds(hours, weekday, holidays):
                for kind_before in _possible_kinds(hours, yesterday, holidays):
                    cover = [
                        minutes
                        for rule in weekly
                        for minutes in rule.wall_minutes(
                            rule.matches_day(weekday, kind), rule.matches_day(yesterday, kind_before)
                        )
                    ]
                    _, gaps = split_intervals(_after_hours_minutes(hours, weekday, kind), cover)
                    if gaps:
                        start, end = gaps[0]
                        after = ", the day after a holiday" if kind_before == "holiday" else ""
                        return f"{DAY_NAMES[weekday]} {_clock(start)}-{_clock(end)} ({kind}{after})"
        return None


def parse_pay_rates(spec: str) -> LoadWeights:
    """Read COMP_PAY_RATES, `"weeknight=10, weekend=15, holiday=20"`: money per hour by kind.

    Unlike load weights, every kind must be named: a kind left out would otherwise be
    paid its default load weight (holiday 2.0) as if that were money.
    """
    rates = parse_load_weights(spec)
    named = {part.partition("=")[0].strip() for part in spec.split(",") if part.strip()}
    missing = tuple(kind for kind in ("weeknight", "weekend", "holiday") if kind not in named)
    if missing:
        raise MissingPayRate(missing)
    return rates


class MissingPayRate(ValueError):
    """COMP_PAY_RATES leaves out some kinds of after-hours time."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        super().__init__(f"no rate for {' or '.join(kinds)}")
        self.kinds = kinds


_RULES_EXAMPLE = "'2026-12-24 = 40; holiday = 30; sat,sun = 20; mon-fri 22:00-06:00 = 15; * = 10'"
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CLOCK = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_pay_rules(spec: str, *, quantum: Decimal = Decimal("0.01")) -> PayRules:
    """Read `"2026-12-24 = 40; holiday = 30; sat,sun = 20; mon-fri 22:00-06:00 = 15; * = 10"`.

    Rules are separated by `;`, each `MATCH = RATE` (money per hour). MATCH is
    days then an optional local time window: a date, a date range
    (`2026-12-24..2026-12-26`) or several separated by commas (one-off); or
    `holiday`, `weekend`, `weeknight`, weekdays (`sat`, `mon-fri`, `sat,sun`) or
    `*` (weekly). A window is `HH:MM-HH:MM`; `24:00` may end one. Raises
    ValueError naming the offending part; the message reads after a setting's name.
    """
    clauses = [c.strip() for c in spec.split(";")]
    clauses = [c for c in clauses if c]
    if not clauses:
        raise ValueError(f"is empty; give rules like {_RULES_EXAMPLE}")
    rules: list[PayRule] = []
    catch_all: PayRule | None = None
    for clause in clauses:
        rule = _parse_rule(clause)
        if catch_all is not None and not rule.one_off:
            raise ValueError(f"{clause!r} can never match: {catch_all.text!r} before it pays every minute")
        if not rule.one_off and not rule.weekdays and rule.kind is None and rule.window is None:
            catch_all = rule
        rules.append(rule)
    return PayRules(tuple(rules), quantum)


def _parse_rule(clause: str) -> PayRule:
    match_text, equals, rate_text = (part.strip() for part in clause.partition("="))
    if not equals or not match_text:
        raise ValueError(f"{clause!r} should be MATCH = RATE, like 'sat,sun = 20'")
    try:
        rate = Decimal(rate_text)
    except InvalidOperation:
        raise ValueError(f"{rate_text!r} is not an amount per hour (in {clause!r})") from None
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"{rate_text!r} is not an amount per hour of at least 0 (in {clause!r})")
    # Let people write "mon - fri", "sat, sun" or "2026-12-24 .. 2026-12-26".
    tokens = re.sub(r"\s*(-|,|\.\.)\s*", r"\1", match_text.lower()).split()
    if len(tokens) not in (1, 2):
        raise ValueError(
            f"{match_text!r} should be days then an optional time window, like 'mon-fri 22:00-06:00'"
            f" (in {clause!r})"
        )
    window = _parse_window(tokens[1], clause) if len(tokens) == 2 else None
    days = tokens[0]
    if days == "*":
        return PayRule(rate, window=window, text=clause)
    if days in _DAY_KINDS:
        kind: AfterHoursKind = days  # type: ignore[assignment]
        return PayRule(rate, kind=kind, window=window, text=clause)
    if days[0].isdigit():
        return PayRule(rate, dates=_parse_dates(days, clause), window=window, text=clause)
    return PayRule(rate, weekdays=_parse_weekdays(days, clause), window=window, text=clause)


def _parse_dates(token: str, clause: str) -> tuple[tuple[date, date], ...]:
    ranges: list[tuple[date, date]] = []
    for part in token.split(","):
        first_text, dots, last_text = part.partition("..")
        first = _parse_date(first_text, clause)
        last = _parse_date(last_text, clause) if dots else first
        if last < first:
            raise ValueError(f"{part!r} ends before it starts (in {clause!r})")
        ranges.append((first, last))
    return tuple(ranges)


def _parse_date(text: str, clause: str) -> date:
    # date.fromisoformat alone would also take "20261224" and week dates.
    try:
        if _DATE.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date like 2026-12-24 (in {clause!r})")


def _parse_weekdays(token: str, clause: str) -> frozenset[int]:
    weekdays: set[int] = set()
    for part in token.split(","):
        first_name, dash, last_name = part.partition("-")
        first = _weekday(first_name, clause)
        last = _weekday(last_name, clause) if dash else first
        # Ranges run forward through the week, as in BUSINESS_HOURS: "fri-mon" is a long weekend.
        weekdays.update((first + n) % 7 for n in range((last - first) % 7 + 1))
    return frozenset(weekdays)


def _weekday(name: str, clause: str) -> int:
    if name in DAY_NAMES:
        return DAY_NAMES.index(name)
    if name in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(name)
    raise ValueError(
        f"{name!r} is not a day: use a date, {', '.join(DAY_NAMES)}, holiday, weekend, weeknight or *"
        f" (in {clause!r})"
    )


def _parse_window(token: str, clause: str) -> Window:
    start_text, dash, end_text = token.partition("-")
    if not dash:
        raise ValueError(f"{token!r} should be a time window like 22:00-06:00 (in {clause!r})")
    start, end = _minute_of_day(start_text, clause), _minute_of_day(end_text, clause)
    if start == _MINUTES_PER_DAY:
        raise ValueError(f"{token!r} cannot start at 24:00 (in {clause!r})")
    if start == end:
        raise ValueError(f"{token!r} ends when it starts (in {clause!r})")
    return start, end


def _minute_of_day(text: str, clause: str) -> int:
    match = _CLOCK.match(text)
    if match is not None:
        hours, minutes = int(match[1]), int(match[2])
        if (hours <= 23 and minutes <= 59) or (hours, minutes) == (24, 0):
            return hours * 60 + minutes
    raise ValueError(f"{text!r} is not a time of day like 22:00 (in {clause!r})")


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _kind_of_day(calendar: BusinessCalendar, day: date) -> AfterHoursKind:
    # The calendar's own labelling of after-hours stretches, so `weekend` here is `weekend` there.
    if calendar.is_holiday(day):
        return "holiday"
    return "weekend" if calendar.hours[day.weekday()] is None else "weeknight"


def _possible_kinds(
    hours: Mapping[int, OpeningHours | None], weekday: int, holidays: bool
) -> list[AfterHoursKind]:
    usual: AfterHoursKind = "weekend" if hours.get(weekday) is None else "weeknight"
    return [usual, "holiday"] if holidays else [usual]


def _after_hours_minutes(hours: Mapping[int, OpeningHours | None], weekday: int, kind: str) -> list[Window]:
    opening = hours.get(weekday)
    if kind != "weeknight" or opening is None:
        return [(0, _MINUTES_PER_DAY)]
    opens, closes = (t.hour * 60 + t.minute for t in opening)
    return [(a, b) for a, b in ((0, opens), (closes, _MINUTES_PER_DAY)) if a < b]


def check_positive(value: Decimal, what: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValueError(f"the {what} must be a positive Decimal, got {value!r}")

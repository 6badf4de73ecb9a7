"""The team's working calendar: when someone is at a desk, and what kind of
after-hours the rest of the time is.

Tickets count reminders and response times in business time; the rota weighs
duties by the after-hours they cover. Both read this one calendar, so a public
holiday is a holiday everywhere.

Moments go in and come out as aware datetimes in UTC. The team's time zone is
used only to find local days, because "a night" and "a Saturday" are local ideas
while an interval is a stretch of real time: across a DST change a local day is
23 or 25 hours long, and the intervals say so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from bot.wall_clock import split_intervals, wall_clock_stretches

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EXAMPLE = "'mon-fri 09:00-18:00'"
# ASCII digits only: `\d` would also take Arabic-Indic and other digits, which int() accepts.
_TIME = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")

OpeningHours = tuple[time, time]
WeeklyHours = dict[int, OpeningHours | None]
"""Opening and closing time per weekday (Monday is 0, as in `date.weekday()`); None when closed."""

AfterHoursKind = Literal["weeknight", "weekend", "holiday"]

# Searching further than this for an opening means the calendar is as good as
# never open (a days-off list covering years); better to say so than to loop.
_OPENING_SEARCH_DAYS = 3660


def parse_business_hours(spec: str) -> WeeklyHours:
    """Parse `"mon-fri 09:00-18:00; sat 10:00-13:00"` into hours per weekday.

    Clauses are separated by `;`; each is days (names or ranges, separated by
    commas; a range may wrap, as in "sun-thu") then `HH:MM-HH:MM`. Days not
    mentioned are closed. Raises ValueError naming the offending part; the
    message reads after a setting's name.
    """
    hours: WeeklyHours = dict.fromkeys(range(7))
    clauses = [c.strip() for c in spec.split(";")]
    clauses = [c for c in clauses if c]
    if not clauses:
        raise ValueError(f"is empty; give opening hours like {_EXAMPLE}")
    for clause in clauses:
        # Let people write "mon - fri 09:00 - 18:00" or "mon, wed".
        tokens = re.sub(r"\s*([-,])\s*", r"\1", clause.lower()).split()
        if len(tokens) != 2:
            raise ValueError(f"{clause!r} should be days then hours, like {_EXAMPLE}")
        days_token, hours_token = tokens
        opening = _parse_opening(hours_token, clause)
        for day in _parse_days(days_token):
            if hours[day] is not None:
                raise ValueError(f"{DAY_NAMES[day]} is given twice")
            hours[day] = opening
    return hours


def format_business_hours(hours: Mapping[int, OpeningHours | None]) -> str:
    """The canonical spec for `hours`: `parse_business_hours` reads it back unchanged."""
    by_opening: dict[OpeningHours, list[int]] = {}
    for day in range(7):
        opening = hours.get(day)
        if opening is not None:
            by_opening.setdefault(opening, []).append(day)
    clauses = []
    for (opens, closes), days in sorted(by_opening.items(), key=lambda item: item[1][0]):
        if opens.second or closes.second or opens.microsecond or closes.microsecond:
            raise ValueError("business hours are given to the minute; seconds cannot be written")
        clauses.append(f"{_format_days(days)} {opens:%H:%M}-{closes:%H:%M}")
    return "; ".join(clauses)


def _parse_days(token: str) -> list[int]:
    days: list[int] = []
    for part in token.split(","):
        if "-" in part:
            first_name, _, last_name = part.partition("-")
            first, last = _day_number(first_name), _day_number(last_name)
            # Ranges run forward through the week, so "sun-thu" is a Middle Eastern working week.
            days.extend((first + n) % 7 for n in range((last - first) % 7 + 1))
        else:
            days.append(_day_number(part))
    seen: set[int] = set()
    for day in days:
        if day in seen:
            raise ValueError(f"{DAY_NAMES[day]} is given twice")
        seen.add(day)
    return days


def _day_number(name: str) -> int:
    if name in DAY_NAMES:
        return DAY_NAMES.index(name)
    if name in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(name)
    raise ValueError(f"{name!r} is not a day; use {', '.join(DAY_NAMES)}")


def _parse_opening(token: str, clause: str) -> OpeningHours:
    opens_text, dash, closes_text = token.partition("-")
    if not dash or "-" in closes_text:
        raise ValueError(f"{token!r} in {clause!r} should be opening-closing, like 09:00-18:00")
    opens, closes = _parse_time(opens_text), _parse_time(closes_text)
    if closes <= opens:
        raise ValueError(f"{clause!r} closes at or before it opens; hours past midnight are not supported")
    return opens, closes


def _parse_time(text: str) -> time:
    match = _TIME.match(text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{text!r} is not a time of day like 09:00")
    return time(int(match[1]), int(match[2]))


def _format_days(days: list[int]) -> str:
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) == 1:
            parts.append(DAY_NAMES[run[0]])
        else:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
    return ",".join(parts)


@dataclass(frozen=True)
class AfterHours:
    """A stretch of after-hours time [start, end) in UTC, of one kind."""

    start: datetime
    end: datetime
    kind: AfterHoursKind

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


class BusinessCalendar:
    """Opening hours per weekday in the team's time zone, minus public holidays and company days off.

    A local day is one of three kinds: a business day (it has opening hours and is
    no holiday), a weekend day (no opening hours that weekday) or a holiday (public
    or company; a holiday on a Sunday is still a holiday). After-hours time takes
    the kind of the local day it falls in, so Friday evening is a weeknight and the
    early hours of Monday are too; adjacent stretches of one kind are joined.
    """

    def __init__(
        self,
        hours: Mapping[int, OpeningHours | None],
        tz: ZoneInfo,
        country: str | None = None,
        days_off: Iterable[date] = (),
    ) -> None:
        weekly = {day: hours.get(day) for day in range(7)}
        self.hours: Mapping[int, OpeningHours | None] = MappingProxyType(weekly)
        for day, opening in self.hours.items():
            if opening is not None and opening[1] <= opening[0]:
                raise ValueError(f"{DAY_NAMES[day]} closes at or before it opens")
        self.tz = tz
        self.country = country.upper() if country else None
        self.days_off = frozenset(days_off)
        self._holidays_by_year: dict[int, frozenset[date]] = {}
        self._lock = threading.Lock()
        if self.country is not None:
            try:
                holidays.country_holidays(self.country)
            except NotImplementedError:
                raise ValueError(f"{country!r} is not a country the holidays package knows") from None

    @classmethod
    def from_spec(
        cls, spec: str, tz: ZoneInfo, country: str | None = None, days_off: Iterable[date] = ()
    ) -> BusinessCalendar:
        return cls(parse_business_hours(spec), tz, country, days_off)

    def local_day(self, moment: datetime) -> date:
        return _utc(moment).astimezone(self.tz).date()

    def is_holiday(self, day: date) -> bool:
        """A public holiday of the country, or a company day off."""
        return day in self.days_off or day in self._public_holidays(day.year)

    def open_stretches(self, day: date) -> list[tuple[datetime, datetime]]:
        """When the team is open on local `day`, in UTC; empty on closed days and holidays.

        Opening hours are the wall-clock minutes they name, on the nights clocks change
        too: where the clock falls back inside them, the minutes that show twice are open
        twice (so 02:30-03:15 on that night may be two stretches); minutes a spring-forward
        jump skips are no time at all.
        """
        opening = self.hours[day.weekday()]
        if opening is None or self.is_holiday(day):
            return []
        return wall_clock_stretches(
            datetime.combine(day, opening[0]), datetime.combine(day, opening[1]), self.tz
        )

    def open_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """From the first moment the team is open on local `day` to the last, in UTC; None on
        closed days, on holidays and when the clock skips every minute of the opening hours."""
        stretches = self.open_stretches(day)
        return (stretches[0][0], stretches[-1][1]) if stretches else None

    def is_open(self, moment: datetime) -> bool:
        moment = _utc(moment)
        return any(opens <= moment < closes for opens, closes in self.open_stretches(self.local_day(moment)))

    def next_opening(self, moment: datetime) -> datetime:
        """The earliest moment at or after `moment` when the team is open (`moment` itself if open now)."""
        moment = _utc(moment)
        if all(opening is None for opening in self.hours.values()):
            raise ValueError("the business hours never open")
        # Start a day early: in zones whose clocks fall back over midnight a moment can
        # read as one local day while still inside the previous day's stretch.
        day = self.local_day(moment) - timedelta(days=1)
        for _ in range(_OPENING_SEARCH_DAYS):
            for opens, closes in self.open_stretches(day):
                if moment < closes:
                    return max(opens, moment)
            day += timedelta(days=1)
        raise ValueError(f"no opening within {_OPENING_SEARCH_DAYS} days of {moment.isoformat()}")

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Seconds of opening hours in [start, end); 0 when end is not after start."""
        start, end = _utc(start), _utc(end)
        total = timedelta()
        for day in self._days_touching(start, end):
            for opens, closes in self.open_stretches(day):
                overlap = min(closes, end) - max(opens, start)
                if overlap > timedelta():
                    total += overlap
        return total.total_seconds()

    def after_hours(self, start: datetime, end: datetime) -> list[AfterHours]:
        """The after-hours stretches in [start, end), in order, each labelled with its kind."""
        start, end = _utc(start), _utc(end)
        stretches: list[AfterHours] = []
        for day in self._days_touching(start, end):
            whole_day = (max(self._midnight(day), start), min(self._midnight(day + timedelta(days=1)), end))
            if whole_day[0] >= whole_day[1]:
                continue
            _, closed = split_intervals([whole_day], self.open_stretches(day))
            kind = self._kind_of_day(day)
            for piece_start, piece_end in closed:
                if stretches and stretches[-1].kind == kind and stretches[-1].end == piece_start:
                    stretches[-1] = AfterHours(stretches[-1].start, piece_end, kind)
                else:
                    stretches.append(AfterHours(piece_start, piece_end, kind))
        return stretches

    def _kind_of_day(self, day: date) -> AfterHoursKind:
        if self.is_holiday(day):
            return "holiday"
        if self.hours[day.weekday()] is None:
            return "weekend"
        return "weeknight"

    def _days_touching(self, start: datetime, end: datetime) -> list[date]:
        if end <= start:
            return []
        first = self.local_day(start) - timedelta(days=1)  # see next_opening
        last = self.local_day(end)
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def _at(self, day: date, wall_time: time) -> datetime:
        # fold=0: an ambiguous wall time (clocks falling back) means its first
        # occurrence; a missing one (clocks springing forward) reads with the
        # offset from before the change, i.e. it lands just after the gap.
        return datetime.combine(day, wall_time, tzinfo=self.tz).astimezone(UTC)

    def _midnight(self, day: date) -> datetime:
        return self._at(day, time(0))

    def _public_holidays(self, year: int) -> frozenset[date]:
        if self.country is None:
            return frozenset()
        with self._lock:
            found = self._holidays_by_year.get(year)
            if found is None:
                found = frozenset(holidays.country_holidays(self.country, years=year).keys())
                self._holidays_by_year[year] = found
            return found


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)

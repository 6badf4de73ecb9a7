"""Pure arithmetic over the rows `queries` fetched: percentiles, business time, daily volume
and backlog, tag trends, on-call hours. No database, no Slack, no clock."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bot.business_hours import BusinessCalendar
from bot.stats.queries import BUCKET_SECONDS, Bucketed, TagCount
from rota.load import LoadWeights


def quantile(values: Sequence[float], q: float, *, ordered: bool = False) -> float | None:
    """The q-quantile with linear interpolation between closest ranks (numpy's default):
    the median of 1, 2, 3, 4 is 2.5, the 90th percentile of 1…10 is 9.1. None when empty."""
    if not values:
        return None
    if not 0 <= q <= 1:
        raise ValueError(f"q must be within 0 and 1, got {q}")
    data = values if ordered else sorted(values)
    position = q * (len(data) - 1)
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


@dataclass(frozen=True)
class Spread:
    """Median and 90th percentile of a set of durations, in seconds."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Spread:
        ordered = sorted(seconds)
        return cls(len(ordered), quantile(ordered, 0.5, ordered=True), quantile(ordered, 0.9, ordered=True))


class BusinessTime:
    """`calendar.business_seconds_between`, answered by bisection over prefix sums.

    The calendar walks every day between two moments on every call; for tens of
    thousands of tickets that is seconds of work. Here the opening hours of the whole
    span are listed once, and each question costs two binary searches.
    """

    def __init__(self, calendar: BusinessCalendar, start: datetime, end: datetime) -> None:
        self.calendar = calendar
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.before: list[float] = []  # business seconds in the intervals before each one
        day = calendar.local_day(start) - timedelta(days=1)
        last = calendar.local_day(end) + timedelta(days=1)
        total = 0.0
        while day <= last:
            for stretch in calendar.open_stretches(day):
                opens, closes = stretch[0].timestamp(), stretch[1].timestamp()
                self.starts.append(opens)
                self.ends.append(closes)
                self.before.append(total)
                total += closes - opens
            day += timedelta(days=1)
        self.low, self.high = start.timestamp(), end.timestamp()

    def _until(self, moment: float) -> float:
        index = bisect_right(self.starts, moment)
        if index == 0:
            return 0.0
        return self.before[index - 1] + min(moment, self.ends[index - 1]) - self.starts[index - 1]

    def seconds_between(self, start: float, end: float) -> float:
        """Business seconds in [start, end), both given as seconds since the epoch."""
        if end <= start:
            return 0.0
        if start < self.low or end > self.high:
            # Outside the span listed up front: ask the calendar rather than guess.
            return self.calendar.business_seconds_between(
                datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
            )
        return self._until(end) - self._until(start)


@dataclass(frozen=True)
class Durations:
    """Waits measured two ways: on the wall clock and in opening hours only."""

    calendar: Spread
    business: Spread


class Waited(NamedTuple):
    """One wait (created → first reply, created → resolved) in seconds since the epoch,
    measured both ways once."""

    start: float
    end: float
    calendar: float
    business: float


def waits(pairs: Iterable[tuple[float, float]], business: BusinessTime) -> list[Waited]:
    """Each (start, end) measured on the clock and in business hours.

    Tens of thousands of tickets go through here for a quarter, so the business-time
    lookup is inlined rather than called per ticket.
    """
    starts, ends, before = business.starts, business.ends, business.before
    low, high = business.low, business.high
    result = []
    for start, end in pairs:
        if end <= start:
            result.append(Waited(start, end, 0.0, 0.0))
            continue
        if start < low or end > high:
            result.append(Waited(start, end, end - start, business.seconds_between(start, end)))
            continue
        # Business seconds from the first opening listed up to each end: see BusinessTime._until.
        a, b = bisect_right(starts, start) - 1, bisect_right(starts, end) - 1
        until_start = before[a] + min(start, ends[a]) - starts[a] if a >= 0 else 0.0
        until_end = before[b] + min(end, ends[b]) - starts[b] if b >= 0 else 0.0
        result.append(Waited(start, end, end - start, until_end - until_start))
    return result


class WaitColumns(NamedTuple):
    """Many waits at once, as columns: what `waits` gives, without a tuple per wait.

    Each element is the very float `waits` computes (the same operations, in the same
    order, on the same doubles), so every figure drawn from them is the same too.
    """

    start: NDArray[np.float64]
    end: NDArray[np.float64]
    calendar: NDArray[np.float64]
    business: NDArray[np.float64]


def wait_columns(starts: Sequence[float], ends: Sequence[float], business: BusinessTime) -> WaitColumns:
    """`waits` over the columns of tens of thousands of (start, end) pairs, vectorised."""
    start = np.asarray(starts, dtype=np.float64)
    end = np.asarray(ends, dtype=np.float64)
    later = end > start
    calendar = np.where(later, end - start, 0.0)
    if business.starts:
        opens = np.asarray(business.starts, dtype=np.float64)
        closes = np.asarray(business.ends, dtype=np.float64)
        before = np.asarray(business.before, dtype=np.float64)

        def until(moment: NDArray[np.float64]) -> NDArray[np.float64]:
            # BusinessTime._until, element by element.
            index = np.searchsorted(opens, moment, side="right") - 1
            at = np.maximum(index, 0)
            found = before[at] + np.minimum(moment, closes[at]) - opens[at]
            return np.where(index >= 0, found, 0.0)

        seconds = np.where(later, until(end) - until(start), 0.0)
    else:
        seconds = np.zeros_like(start)
    outside = later & ((start < business.low) | (end > business.high))
    for i in np.flatnonzero(outside).tolist():
        seconds[i] = business.seconds_between(float(start[i]), float(end[i]))
    return WaitColumns(start, end, calendar, seconds)


def spread_of(seconds: NDArray[np.float64]) -> Spread:
    """`Spread.of` for a column."""
    ordered = np.sort(seconds).tolist()
    return Spread(len(ordered), quantile(ordered, 0.5, ordered=True), quantile(ordered, 0.9, ordered=True))


def column_durations(waits: WaitColumns) -> Durations:
    return Durations(spread_of(waits.calendar), spread_of(waits.business))


def daily_medians(
    boundaries: Sequence[float], moments: NDArray[np.float64], values: NDArray[np.float64]
) -> list[float | None]:
    """Median of `values` per day of a period (its boundaries as epoch seconds), by `moments`."""
    days = len(boundaries) - 1
    index = np.searchsorted(np.asarray(boundaries, dtype=np.float64), moments, side="right") - 1
    inside = (index >= 0) & (index < days)
    index, values = index[inside], values[inside]
    # Sorted by day, then by value: each day's values are one ordered run.
    order = np.lexsort((values, index))
    index, values = index[order], values[order]
    edges = np.searchsorted(index, np.arange(days + 1), side="left").tolist()
    ordered = values.tolist()
    return [quantile(ordered[edges[d] : edges[d + 1]], 0.5, ordered=True) for d in range(days)]


def durations(waits: Sequence[Waited]) -> Durations:
    return Durations(Spread.of([w.calendar for w in waits]), Spread.of([w.business for w in waits]))


def day_index(moment: float, boundaries: Sequence[float]) -> int | None:
    """Which day of a period (given by its boundaries as epoch seconds) a moment falls in."""
    index = bisect_right(boundaries, moment) - 1
    return index if 0 <= index < len(boundaries) - 1 else None


def span_of(moments: Iterable[float | None]) -> tuple[datetime, datetime] | None:
    known = [m for m in moments if m is not None]
    if not known:
        return None
    return datetime.fromtimestamp(min(known), UTC), datetime.fromtimestamp(max(known), UTC)


# -- volume ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayVolume:
    day: date
    created: int
    resolved: int  # resolutions: a ticket resolved, reopened and resolved again counts twice
    reopened: int
    backlog: int  # unresolved tickets at the end of the day (or now, for today)


def daily_volume(
    days: Sequence[date],
    boundaries: Sequence[datetime],
    now: datetime,
    created: Iterable[Bucketed],
    changes: Iterable[Bucketed],
    unresolved_now: int,
) -> list[DayVolume]:
    """Per local day: created, resolutions, reopens, and the backlog at its end.

    The backlog is worked back from today's (the tickets' status now, which is always
    right): backlog(T) = unresolved now − created since T + resolved since T − reopened
    since T. `created` and `changes` must cover everything from the first boundary on.
    """
    if len(boundaries) != len(days) + 1:
        raise ValueError("one boundary per day, plus the end of the last day")
    starts = [b.timestamp() for b in boundaries]
    per_day: dict[str, list[int]] = {k: [0] * len(days) for k in ("created", "resolved", "reopened")}
    # Counts from each boundary on, for the backlog: suffix sums over the same buckets.
    since = {k: [0] * (len(days) + 1) for k in per_day}
    for row in [*created, *changes]:
        moment = float(row.bucket * BUCKET_SECONDS)  # the slice's start, in epoch seconds
        index = bisect_right(starts, moment) - 1  # the boundary at or before this slice
        if index < 0:
            continue
        if index < len(days):
            per_day[row.kind][index] += row.count
        since[row.kind][min(index, len(days))] += row.count
    for kind in since:
        for i in range(len(days) - 1, -1, -1):
            since[kind][i] += since[kind][i + 1]
    result = []
    for i, day in enumerate(days):
        if boundaries[i + 1] > now:
            # Today (or a day still to come): the backlog is the one now.
            backlog = unresolved_now
        else:
            backlog = (
                unresolved_now - since["created"][i + 1] + since["resolved"][i + 1] - since["reopened"][i + 1]
            )
        result.append(
            DayVolume(day, per_day["created"][i], per_day["resolved"][i], per_day["reopened"][i], backlog)
        )
    return result


# -- tags -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagTrend:
    name: str
    count: int
    previous: int

    @property
    def change(self) -> int:
        return self.count - self.previous

    @property
    def change_ratio(self) -> float | None:
        """+0.5 is half as many again as before; None when the tag is new."""
        return None if self.previous == 0 else self.change / self.previous


def top_tags(counts: Iterable[TagCount], limit: int = 10) -> list[TagTrend]:
    """The most used tags of the period (ties by name), each with its count the period before."""
    trends = [TagTrend(c.name, c.count, c.previous) for c in counts if c.count > 0]
    return sorted(trends, key=lambda t: (-t.count, t.name))[:limit]


# -- on call ---------------------------------------------------------------------------------


@dataclass
class OnCall:
    """What one person held in the period, clipped to it."""

    duties: int = 0
    hours: float = 0.0  # after-hours hours on the phone
    hours_by_kind: dict[str, float] = field(default_factory=dict)  # weeknight | weekend | holiday
    load: float = 0.0  # the rota's weighted load, as the planner and the balance score count it


def on_call(
    duties: Iterable[tuple[datetime, datetime, str | None]],
    calendar: BusinessCalendar,
    weights: LoadWeights,
    start: datetime,
    end: datetime,
) -> dict[str, OnCall]:
    """Per person: duties overlapping [start, end), and their after-hours within it."""
    people: dict[str, OnCall] = {}
    for duty_start, duty_end, person in duties:
        if person is None:
            continue
        lo, hi = max(duty_start, start), min(duty_end, end)
        if lo >= hi:
            continue
        held = people.setdefault(person, OnCall())
        held.duties += 1
        for stretch in calendar.after_hours(lo, hi):
            hours = stretch.duration.total_seconds() / 3600
            held.hours += hours
            held.hours_by_kind[stretch.kind] = held.hours_by_kind.get(stretch.kind, 0.0) + hours
            held.load += hours * weights.of(stretch.kind)
    return people


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def roster_loads(held: Mapping[str, OnCall], roster: Mapping[str, float]) -> dict[str, float]:
    """The load of everyone on the roster (0 for whoever held nothing): what the balance score reads."""
    return {person: (held[person].load if person in held else 0.0) for person in roster}

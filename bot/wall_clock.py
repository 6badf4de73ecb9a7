"""Wall-clock readings as stretches of real time, and cutting intervals by others.

A rule written on the wall clock ("22:00-06:00") means the minutes the clock shows,
which on the nights clocks change is not one stretch of real time: where they fall
back a reading shows twice, where they spring forward some readings never show.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

_MICROSECOND = timedelta(microseconds=1)

# Every UTC offset in use lies within 15 hours, and no zone changes its offset twice within
# 3 hours: sampling at that step finds every change near a day.
_OFFSET_REACH = timedelta(hours=15)
_OFFSET_STEP = timedelta(hours=3)


def wall_clock_stretches(first: datetime, last: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The stretches of real time (UTC) during which the clock in `tz` reads from `first` up to `last`.

    `first` and `last` are naive wall-clock readings. Where clocks fall back a reading
    shows twice and both stretches count; where they spring forward the skipped readings
    hold no time at all. So a window is the set of wall-clock minutes it names.
    """
    stretches: list[tuple[datetime, datetime]] = []
    low = (first - _OFFSET_REACH).replace(tzinfo=UTC)
    high = (last + _OFFSET_REACH).replace(tzinfo=UTC)
    for begins, ends, offset in _offset_spans(low, high, tz):
        # While the offset holds, the clock reads real time + offset.
        start = max(begins, (first - offset).replace(tzinfo=UTC))
        stop = min(ends, (last - offset).replace(tzinfo=UTC))
        if start >= stop:
            continue
        if stretches and stretches[-1][1] == start:
            stretches[-1] = (stretches[-1][0], stop)
        else:
            stretches.append((start, stop))
    return stretches


def _offset_spans(low: datetime, high: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime, timedelta]]:
    """[low, high) cut where the UTC offset of `tz` changes, each piece with its offset."""
    spans: list[tuple[datetime, datetime, timedelta]] = []
    begins, offset = low, _offset(low, tz)
    probe = low
    while probe < high:
        step = min(probe + _OFFSET_STEP, high)
        if _offset(step, tz) != offset:
            before, after = probe, step  # the change lies in (before, after]
            while after - before > _MICROSECOND:
                middle = before + (after - before) // 2
                if _offset(middle, tz) == offset:
                    before = middle
                else:
                    after = middle
            spans.append((begins, after, offset))
            begins, offset = after, _offset(after, tz)
        probe = step
    spans.append((begins, high, offset))
    return spans


def _offset(moment: datetime, tz: ZoneInfo) -> timedelta:
    return moment.astimezone(tz).utcoffset() or timedelta()


Point = TypeVar("Point", datetime, int)


def split_intervals(
    pieces: list[tuple[Point, Point]], cover: list[tuple[Point, Point]]
) -> tuple[list[tuple[Point, Point]], list[tuple[Point, Point]]]:
    """`pieces` cut into the parts inside `cover` and the parts outside it (intervals half-open)."""
    ordered = sorted(cover)
    inside: list[tuple[Point, Point]] = []
    outside: list[tuple[Point, Point]] = []
    for start, end in pieces:
        cursor = start
        for cover_start, cover_end in ordered:
            if cover_start >= end:
                break
            if cover_end <= cursor:
                continue
            if cover_start > cursor:
                outside.append((cursor, cover_start))
                cursor = cover_start
            inside.append((cursor, min(cover_end, end)))
            cursor = min(cover_end, end)
        if cursor < end:
            outside.append((cursor, end))
    return inside, outside

"""Duties: who holds the emergency phone from one hand-off to the next.

A duty runs from one hand-off to the next and covers every after-hours moment in
between, so consecutive duties cover the after-hours exactly once. Hand-offs
happen when the office opens, where the phone can change hands in person:

- "week" (the default): at the first opening of each local week (Monday 09:00,
  or Tuesday's opening after Easter Monday);
- "night": at every day's opening.

On a day with no opening (weekend, holiday, a week of closure) the hand-off is
at the usual opening time, the earliest one in the weekly hours (09:00 if the
team never opens).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from bot.business_hours import BusinessCalendar
from rota.roster import as_utc

DutyUnit = Literal["week", "night"]
DUTY_UNITS: tuple[DutyUnit, ...] = ("week", "night")

_FALLBACK_HANDOFF = time(9, 0)


@dataclass(frozen=True)
class Duty:
    """On call during [start, end) in UTC; `person` None while unassigned.

    `pinned` duties (an accepted swap, a manager's choice) are never changed by
    re-planning.
    """

    start: datetime
    end: datetime
    person: str | None = None
    pinned: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"a duty must end after it starts ({self.start.isoformat()})")


def duty_slots(
    calendar: BusinessCalendar, start: datetime, end: datetime, unit: DutyUnit = "week"
) -> list[Duty]:
    """Unassigned duties covering [start, end) without gaps.

    The first starts exactly at `start` (so a rota extends seamlessly from its last
    duty) and lasts to the next hand-off; the last one ends at the first hand-off
    at or after `end`.
    """
    if unit not in DUTY_UNITS:
        raise ValueError(f"duty unit must be one of {', '.join(DUTY_UNITS)}, got {unit!r}")
    start, end = as_utc(start), as_utc(end)
    slots: list[Duty] = []
    slot_start = start
    while slot_start < end:
        slot_end = next_handoff(calendar, slot_start, unit)
        slots.append(Duty(slot_start, slot_end))
        slot_start = slot_end
    return slots


def next_handoff(calendar: BusinessCalendar, after: datetime, unit: DutyUnit = "week") -> datetime:
    """The first hand-off strictly after `after`."""
    after = as_utc(after)
    day = calendar.local_day(after) - timedelta(days=1)
    if unit == "week":
        # This week's hand-off may still be ahead (Tuesday's, after Easter Monday).
        day -= timedelta(days=day.weekday())
    while True:
        if unit == "night" or day.weekday() == 0:
            moment = _handoff_on(calendar, day, unit)
            if moment > after:
                return moment
        day += timedelta(days=1)


def _handoff_on(calendar: BusinessCalendar, day: date, unit: DutyUnit) -> datetime:
    """The hand-off of the night starting on `day`, or of the week starting on Monday `day`."""
    days = [day] if unit == "night" else [day + timedelta(days=n) for n in range(7)]
    for candidate in days:
        interval = calendar.open_interval(candidate)
        if interval is not None:
            return interval[0]
    return datetime.combine(day, _usual_opening(calendar), tzinfo=calendar.tz).astimezone(UTC)


def _usual_opening(calendar: BusinessCalendar) -> time:
    openings = [hours[0] for hours in calendar.hours.values() if hours is not None]
    return min(openings) if openings else _FALLBACK_HANDOFF

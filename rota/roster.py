"""Who can be on call: people with a weight and a time zone, and their time off."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Person:
    """Someone on the roster.

    `weight` is the share of the load they carry: 1.0 full time, 0.5 half as
    much. `tz` is their own time zone, used for their calendar months.
    """

    id: str
    weight: float = 1.0
    tz: ZoneInfo = field(default=ZoneInfo("UTC"))

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a person needs an id")
        # A weight of 0 would make their normalised load infinite; leave them off the roster instead.
        if not self.weight > 0:
            raise ValueError(f"{self.id}'s weight must be above 0, got {self.weight}")


@dataclass(frozen=True)
class TimeOff:
    """`person` is away during [start, end), in UTC."""

    person: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"{self.person}'s time off ends at or before it starts")

    @classmethod
    def for_days(cls, person: Person, first: date, last: date) -> TimeOff:
        """Whole local days `first` to `last` inclusive, as `/oncall away 2026-12-20 2027-01-02` means."""
        if last < first:
            raise ValueError(f"time off from {first} to {last} ends before it starts")
        start = datetime.combine(first, time(0), tzinfo=person.tz)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=person.tz)
        return cls(person.id, start, end)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)

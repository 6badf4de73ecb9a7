"""The period a figure covers: whole local days in the team's time zone, [start, end) in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Named periods end today (included) and reach back this many days.
NAMED_PERIODS = {"week": 7, "month": 30, "quarter": 90}
# Two years of daily figures is already more than a chart or a Slack message can show.
MAX_DAYS = 731
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PeriodError(ValueError):
    """The period asked for cannot be read; the message is meant for the person who asked."""


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date  # included
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise PeriodError("The period ends before it starts: give the earlier date first.")

    @property
    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.length)]

    @property
    def length(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def start(self) -> datetime:
        return local_midnight(self.first_day, self.tz)

    @property
    def end(self) -> datetime:
        return local_midnight(self.last_day + timedelta(days=1), self.tz)

    def boundaries(self) -> list[datetime]:
        """The start of every day in the period, then the end of the last one (UTC)."""
        return [local_midnight(self.first_day + timedelta(days=n), self.tz) for n in range(self.length + 1)]

    def previous(self) -> Period:
        """The period of the same length just before this one: what a trend compares with."""
        return Period(
            self.first_day - timedelta(days=self.length), self.first_day - timedelta(days=1), self.tz
        )

    def label(self) -> str:
        if self.first_day == self.last_day:
            return self.first_day.isoformat()
        return f"{self.first_day.isoformat()} to {self.last_day.isoformat()}"


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def parse_period(args: list[str], now: datetime, tz: ZoneInfo, *, default: str = "week") -> Period:
    """`week` | `month` | `quarter` (the last 7, 30 or 90 days, today included) or
    `YYYY-MM-DD YYYY-MM-DD` (first and last day, both included); nothing means `default`."""
    words = [w.strip().lower() for w in args if w.strip()] or [default]
    today = now.astimezone(tz).date()
    if len(words) == 1 and words[0] in NAMED_PERIODS:
        return Period(today - timedelta(days=NAMED_PERIODS[words[0]] - 1), today, tz)
    if len(words) == 2 and all(_DATE.match(w) for w in words):
        try:
            first, last = (date.fromisoformat(w) for w in words)
        except ValueError as exc:
            raise PeriodError(f"That is not a date on the calendar ({exc}).") from None
        period = Period(first, last, tz)
        if period.length > MAX_DAYS:
            raise PeriodError(f"Ask for at most {MAX_DAYS} days at a time.")
        return period
    raise PeriodError(
        f"I can't read `{' '.join(args)}` as a period: use `week`, `month`, `quarter`, "
        "or two dates like `2026-01-01 2026-03-31`."
    )

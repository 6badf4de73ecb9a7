"""Reading an iCalendar file into plain events: every occurrence in a window, in UTC.

On-call tools and shared calendars export the same few shapes (Opsgenie, PagerDuty,
Grafana OnCall, Google and Outlook): one VEVENT per shift, or a weekly RRULE with
EXDATEs and RECURRENCE-ID overrides, in a TZID time zone or UTC, and all-day events for
absences. `recurring_ical_events` expands the recurrences (RFC 5545 3.8.5) so a moved
or cancelled occurrence is seen as the calendar shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

# Far more than any export holds; a bigger one is refused rather than expanded forever.
MAX_OCCURRENCES = 20_000
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class CalendarUnreadable(ValueError):
    """Not an iCalendar file we can read; the message says why, for the person who gave it."""


@dataclass(frozen=True)
class CalendarEvent:
    """One occurrence: [start, end) in UTC.

    `key` is stable while the occurrence exists, wherever it moves: the event's UID and
    its RECURRENCE-ID (the start it had in the series), so a feed read again can tell an
    occurrence moved from one removed and another added.
    """

    key: str
    start: datetime
    end: datetime
    summary: str
    emails: tuple[str, ...]  # attendees first, then any written in the text, then the organiser
    # An all-day event's first and last day: whole days wherever the person is, so time
    # off reads them in the person's own zone (start and end here are in the reader's).
    days: tuple[date, date] | None = None

    @property
    def all_day(self) -> bool:
        return self.days is not None


def read_calendar(data: bytes, *, start: datetime, end: datetime, tz: ZoneInfo) -> list[CalendarEvent]:
    """Every occurrence overlapping [start, end), in time order.

    `tz` reads all-day events (whole local days) and floating times, which carry no zone.
    """
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError on junk
        raise CalendarUnreadable(f"this is not an iCalendar file ({type(exc).__name__})") from None
    if getattr(calendar, "name", "") != "VCALENDAR":
        raise CalendarUnreadable("this is not an iCalendar file (no VCALENDAR)")
    # The expansion stamps a RECURRENCE-ID on every occurrence, single events too; only a
    # series (or an override of one) has occurrences to tell apart.
    series = {
        str(c.get("UID", ""))
        for c in calendar.walk("VEVENT")
        if any(c.get(name) is not None for name in ("RRULE", "RDATE", "RECURRENCE-ID"))
    }
    try:
        query = recurring_ical_events.of(calendar)
        found: list[CalendarEvent] = []
        for component in query.between(start, end):
            event = _event(component, tz, series)
            if event is not None and event.start < end and start < event.end:
                found.append(event)
            if len(found) > MAX_OCCURRENCES:
                raise CalendarUnreadable(f"the calendar holds more than {MAX_OCCURRENCES} events")
    except CalendarUnreadable:
        raise
    except Exception as exc:
        raise CalendarUnreadable(f"the calendar's events cannot be read ({type(exc).__name__})") from None
    return sorted(found, key=lambda e: (e.start, e.end, e.key))


def _event(component: Any, tz: ZoneInfo, series: set[str]) -> CalendarEvent | None:
    if component.name != "VEVENT" or str(component.get("STATUS", "")).upper() == "CANCELLED":
        return None
    begin = component.get("DTSTART")
    if begin is None:
        return None
    first = begin.dt
    finish = component.get("DTEND")
    if finish is not None:
        last = finish.dt
    elif component.get("DURATION") is not None:
        last = first + component["DURATION"].dt
    else:
        # RFC 5545 3.6.1: no end means a day for a date, an instant for a date-time.
        last = first + timedelta(days=1) if not isinstance(first, datetime) else first
    days = None
    if not isinstance(first, datetime):
        last_day = last if not isinstance(last, datetime) else last.date()
        days = (first, max(first, last_day - timedelta(days=1)))
    start, end = _moment(first, tz), _moment(last, tz)
    if end <= start:
        return None
    uid = str(component.get("UID", ""))
    recurrence = component.get("RECURRENCE-ID")
    if not uid:
        uid, occurrence = "no-uid", start.isoformat()
    elif uid not in series:
        occurrence = ""
    elif recurrence is not None:
        occurrence = _moment(recurrence.dt, tz).isoformat()
    else:
        occurrence = start.isoformat()
    summary = " ".join(str(component.get("SUMMARY", "")).split())
    return CalendarEvent(
        key=f"{uid}#{occurrence}",
        start=start,
        end=end,
        summary=summary,
        emails=_emails(component, summary),
        days=days,
    )


def _moment(value: date | datetime, tz: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=tz).astimezone(UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=tz).astimezone(UTC)
    return value.astimezone(UTC)


def _emails(component: Any, summary: str) -> tuple[str, ...]:
    found: list[str] = []
    attendees = component.get("ATTENDEE")
    if attendees is not None and not isinstance(attendees, list):
        attendees = [attendees]
    for attendee in attendees or []:
        found.extend(_EMAIL.findall(str(attendee)))
    found.extend(_EMAIL.findall(summary))
    found.extend(_EMAIL.findall(str(component.get("DESCRIPTION", ""))))
    organizer = component.get("ORGANIZER")
    if organizer is not None:
        found.extend(_EMAIL.findall(str(organizer)))
    seen: dict[str, None] = {}
    for email in found:
        seen.setdefault(email.lower(), None)
    return tuple(seen)

"""Whose is a calendar event: by email first (the roster's, and Slack's answer for the
addresses the roster doesn't know), then by a roster name written in the summary.

Exports name people differently: PagerDuty "On Call - Ada Lovelace - Primary" with the
person as ATTENDEE, Opsgenie and Grafana OnCall the user's name or username, a shared
Google or Outlook calendar whoever typed the event. An event we cannot place is listed,
never guessed: two names that both fit leave it unmatched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rota.ical_read import CalendarEvent


@dataclass(frozen=True)
class Directory:
    by_email: Mapping[str, str]  # lower-case address -> user id
    names: Mapping[str, str]  # user id -> the name the roster knows them by


@dataclass(frozen=True)
class Placed:
    """An occurrence and whose it is."""

    key: str
    start: datetime
    end: datetime
    user_id: str


@dataclass(frozen=True)
class Matched:
    placed: tuple[Placed, ...]
    unmatched: tuple[str, ...]  # each distinct summary (or address) nobody fits, sorted


def emails_of(events: Iterable[CalendarEvent]) -> list[str]:
    """Every address the events name, once each, for a look-up of the unknown ones."""
    seen: dict[str, None] = {}
    for event in events:
        for email in event.emails:
            seen.setdefault(email, None)
    return list(seen)


def whose(event: CalendarEvent, directory: Directory) -> str | None:
    for email in event.emails:
        found = directory.by_email.get(email.lower())
        if found is not None:
            return found
    return _by_name(event.summary, directory.names)


def match_events(events: Sequence[CalendarEvent], directory: Directory) -> Matched:
    placed: list[Placed] = []
    unmatched: set[str] = set()
    for event in events:
        user = whose(event, directory)
        if user is None:
            unmatched.add(event.summary or (event.emails[0] if event.emails else "(an event with no title)"))
            continue
        placed.append(Placed(event.key, event.start, event.end, user))
    return Matched(tuple(placed), tuple(sorted(unmatched)))


def _by_name(summary: str, names: Mapping[str, str]) -> str | None:
    text = summary.casefold()
    fits: dict[str, int] = {}
    for user_id, name in names.items():
        name = " ".join(name.split()).casefold()
        # Two letters match too much ("Al" in "All hands"); a name is at least three.
        if len(name) >= 3 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
            fits[user_id] = len(name)
    if not fits:
        return None
    longest = max(fits.values())
    best = [user for user, size in fits.items() if size == longest]
    return best[0] if len(best) == 1 else None

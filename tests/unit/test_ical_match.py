"""Whose is an event: email first, then a roster name in the title; never a guess."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.ical_fetch import FetchFailed, mask_url, normalise_url
from rota.ical_match import Directory, match_events, whose
from rota.ical_read import CalendarEvent

START = datetime(2026, 12, 7, 8, tzinfo=UTC)
PEOPLE = Directory(
    by_email={"ada@example.com": "UADA"},
    names={
        "UADA": "Ada Lovelace",
        "UBOB": "Bob",
        "UBOBBY": "Bob Byron",
        "UAL": "Al",
        "UANN": "Ann Lee",
        "UANN2": "ann lee",
    },
)


def event(summary: str, *emails: str) -> CalendarEvent:
    return CalendarEvent("k", START, START + timedelta(days=7), summary, emails)


@pytest.mark.parametrize(
    ("summary", "emails", "expected"),
    [
        ("On Call - Somebody Else", ("ADA@Example.com",), "UADA"),  # the address wins, any case
        ("Support_schedule - Ada Lovelace", (), "UADA"),
        ("Support_schedule - ada lovelace (override)", (), "UADA"),
        ("On call: Bob Byron", (), "UBOBBY"),  # the longest name that fits
        ("On call: Bob", (), "UBOB"),
        ("All hands", (), None),  # "Al" is too short to be told from a word
        ("Ann Lee away", (), None),  # two people fit the same name: listed, not guessed
        ("Bobby Tables", (), None),  # a name inside a longer word is not that name
        ("On call", ("nobody@example.com",), None),
    ],
)
def test_whose(summary: str, emails: tuple[str, ...], expected: str | None) -> None:
    assert whose(event(summary, *emails), PEOPLE) == expected


def test_unmatched_events_are_listed_once() -> None:
    matched = match_events([event("Zed"), event("Zed"), event("", "x@example.com"), event("Bob")], PEOPLE)
    assert [p.user_id for p in matched.placed] == ["UBOB"]
    assert matched.unmatched == ("Zed", "x@example.com")


def test_calendar_addresses() -> None:
    assert (
        normalise_url(" webcal://acme.pagerduty.com/private/abc/feed ")
        == "https://acme.pagerduty.com/private/abc/feed"
    )
    assert mask_url("https://calendar.google.com/calendar/ical/x%40y/private-secret/basic.ics") == (
        "https://calendar.google.com/…"
    )
    for bad in (
        "ftp://example.com/x.ics",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "example.com/x.ics",
        "",
    ):
        with pytest.raises(FetchFailed):
            normalise_url(bad)

"""Time off following calendars of absences, read from a real HTTP server that answers
ETags with 304 and changes between reads: absences added, moved and removed here as
there, hand-entered time off untouched, and a clash with a duty told to its holder."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.ical_fetch import FetchFailed, fetch_calendar
from bot.sandbox.slack_api import SlackStandIn
from bot.sealed import is_sealed, unseal
from bot.slack.time_off_sync import read_time_off_feeds
from bot.storage.db import transaction
from bot.storage.models import OutboxItem, TimeOffRecord
from bot.storage.models_ical import TimeOffFeed
from rota import store, time_off_feeds
from rota.planner import PlanConfig
from rota.store import StaffMember
from tests.support.calendar_server import CalendarServer, calendar_server
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ical"
ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=ROME).astimezone(UTC)
TEAM = [
    StaffMember("UADA", "Ada Lovelace", "Europe/Rome"),
    StaffMember("UBOB", "Bob Byron", "Europe/Rome"),
    StaffMember("UCY", "Cy Young", "America/New_York"),
]
SECRET_PATH = "/calendar/ical/team%40example.com/private-0123456789abcdef/basic.ics"


@pytest.fixture
def server() -> Iterator[CalendarServer]:
    with calendar_server() as running:
        yield running


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        for member in TEAM:
            first = member.name.split()[0].lower()
            standin.add_user(member.user_id, first, member.name, tz=member.tz, email=f"{first}@example.com")
        yield standin


@dataclass
class Team:
    factory: sessionmaker[Session]
    clock: FrozenClock
    server: CalendarServer
    slack: SlackStandIn
    database_url: str

    def read(self, **overrides: str) -> int:
        env = {"TIME_OFF_ICAL_URLS": self.server.url + SECRET_PATH, "ICAL_ALLOW_PRIVATE_HOSTS": "true"}
        settings = settings_for(self.database_url, **{**env, **overrides})
        client = WebClient(token="xoxb-test-token", base_url=self.slack.base_url)
        return read_time_off_feeds(self.factory, settings, self.clock, client)

    def absences(self) -> dict[tuple[str, date, date], int]:
        with self.factory() as session:
            rows = session.scalars(select(TimeOffRecord).where(TimeOffRecord.cancelled_at.is_(None))).all()
            return {(r.user_id, r.first_day, r.last_day): r.id for r in rows}

    def dms(self) -> list[dict[str, Any]]:
        with self.factory() as session:
            return [
                o.payload
                for o in session.scalars(select(OutboxItem))
                if o.payload.get("channel", "").startswith("U")
            ]


@pytest.fixture
def team(
    session_factory: sessionmaker[Session], server: CalendarServer, slack: SlackStandIn, database_url: str
) -> Team:
    calendar = settings_for(database_url).calendar()
    with transaction(session_factory) as session:
        store.sync_roster(session, TEAM, NOW - timedelta(days=30))
        preview = store.preview_plan(
            session, calendar, PlanConfig(unit="week"), now=NOW, until=NOW + timedelta(weeks=6)
        )
        store.publish_plan(session, preview, by="UMGR", now=NOW)
        # Typed by hand: a feed never touches it.
        store.add_time_off(session, "UBOB", date(2026, 12, 28), date(2026, 12, 29), by="UBOB", now=NOW)
    server.bodies[SECRET_PATH] = (FIXTURES / "google_time_off.ics").read_bytes()
    return Team(session_factory, FrozenClock(NOW), server, slack, database_url)


def test_a_team_feed_adds_moves_and_removes_absences(team: Team, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert team.read() == 4
    absences = team.absences()
    assert set(absences) == {
        ("UADA", date(2026, 12, 21), date(2026, 12, 23)),  # all-day, found by the organiser's address
        ("UBOB", date(2026, 12, 4), date(2026, 12, 4)),  # a weekly Friday off, found by name…
        ("UBOB", date(2026, 12, 18), date(2026, 12, 18)),  # …with 11 December excluded (EXDATE)
        ("UCY", date(2026, 12, 7), date(2026, 12, 7)),  # a dentist's appointment in New York time
        ("UBOB", date(2026, 12, 28), date(2026, 12, 29)),  # entered by hand
    }
    with team.factory() as session:
        dentist = session.get(TimeOffRecord, absences[("UCY", date(2026, 12, 7), date(2026, 12, 7))])
        assert dentist is not None
        assert dentist.start == datetime(2026, 12, 7, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    # Each absence that falls on the person's own duty is told to them, with the duties.
    with team.factory() as session:
        clashing = {
            off.user_id
            for off in store.time_off_list(session, since=NOW)
            if any(d.user_id == off.user_id for d in store.duties_between(session, off.start, off.end))
            and off.id != absences[("UBOB", date(2026, 12, 28), date(2026, 12, 29))]
        }
    assert clashing, "the published plan puts someone on duty during their absence"
    assert {dm["channel"] for dm in team.dms() if "Your calendar" in dm["text"]} == clashing

    # An hour later the calendar is unchanged: the server is asked with the ETag and says 304.
    team.clock.advance(timedelta(hours=1))
    assert team.read() == 0
    assert team.server.seen[-1]["if-none-match"] == team.server.etag(SECRET_PATH)
    assert team.absences() == absences

    # Then Ada moves her holiday a day later, Bob's Fridays go, and Cy adds a day off.
    text = (FIXTURES / "google_time_off.ics").read_bytes().decode()
    text = text.replace("DTSTART;VALUE=DATE:20261221", "DTSTART;VALUE=DATE:20261222")
    text = text.replace("DTEND;VALUE=DATE:20261224", "DTEND;VALUE=DATE:20261225")
    start = text.index("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261204")
    text = text[:start] + text[text.index("END:VEVENT\r\n", start) + len("END:VEVENT\r\n") :]
    text = text.replace(
        "END:VCALENDAR",
        "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261230\r\nDTEND;VALUE=DATE:20261231\r\nUID:cy-new@google.com\r\n"
        "SUMMARY:Day off\r\nORGANIZER:mailto:cy@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR",
    )
    team.server.bodies[SECRET_PATH] = text.encode()
    team.clock.advance(timedelta(hours=1))
    assert team.read() == 4  # one moved, two removed, one added
    after = team.absences()
    assert set(after) == {
        ("UADA", date(2026, 12, 22), date(2026, 12, 24)),
        ("UCY", date(2026, 12, 7), date(2026, 12, 7)),
        ("UCY", date(2026, 12, 30), date(2026, 12, 30)),
        ("UBOB", date(2026, 12, 28), date(2026, 12, 29)),
    }
    # Moved, not cancelled and added again: the same time off.
    assert (
        after[("UADA", date(2026, 12, 22), date(2026, 12, 24))]
        == absences[("UADA", date(2026, 12, 21), date(2026, 12, 23))]
    )
    with team.factory() as session:
        feed = session.scalars(select(TimeOffFeed)).one()
        assert "private-0123456789abcdef" not in feed.label
    # The feed's secret address never reaches a log line.
    assert "private-0123456789abcdef" not in caplog.text


def test_a_failing_feed_changes_nothing_and_says_why(team: Team) -> None:
    team.server.status = 503
    assert team.read() == 0
    with team.factory() as session:
        feed = session.scalars(select(TimeOffFeed)).one()
        assert feed.last_error == "the calendar server answered 503"
    assert len(team.absences()) == 1  # the hand-entered one
    # Read again only after the hour.
    team.server.status = 200
    assert team.read() == 0
    team.clock.advance(timedelta(hours=1))
    assert team.read() == 4


def test_a_personal_feed_is_all_its_owners(team: Team) -> None:
    path = "/personal/cy.ics"
    team.server.bodies[path] = (FIXTURES / "google_time_off.ics").read_bytes()
    with transaction(team.factory) as session:
        time_off_feeds.set_personal_feed(session, "UCY", team.server.url + path, "cy's calendar", now=NOW)
    team.server.bodies[SECRET_PATH] = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nEND:VCALENDAR\r\n"
    assert team.read() == 5
    assert {(u, first) for u, first, _ in team.absences()} == {
        ("UCY", date(2026, 12, 21)),
        ("UCY", date(2026, 12, 4)),
        ("UCY", date(2026, 12, 18)),
        ("UCY", date(2026, 12, 7)),
        ("UCY", date(2026, 12, 9)),  # "Team offsite": in her own calendar, hers
        ("UBOB", date(2026, 12, 28)),
    }
    # Private addresses are refused unless allowed.
    with transaction(team.factory) as session:
        time_off_feeds.set_personal_feed(session, "UCY", team.server.url + "/other.ics", "other", now=NOW)
    team.clock.advance(timedelta(hours=1))
    team.read(ICAL_ALLOW_PRIVATE_HOSTS="false")
    with team.factory() as session:
        errors = {f.label: f.last_error for f in session.scalars(select(TimeOffFeed))}
    assert errors["other"] == "the calendar's address is on a private network"


def test_fetching_is_bounded_and_conditional(server: CalendarServer) -> None:
    server.bodies["/big.ics"] = b"X" * 2048
    with pytest.raises(FetchFailed, match="larger than"):
        fetch_calendar(server.url + "/big.ics", allow_private=True, max_bytes=1024)
    server.bodies["/cal.ics"] = (FIXTURES / "google_time_off.ics").read_bytes()
    first = fetch_calendar(server.url + "/cal.ics", allow_private=True)
    assert first.body == server.bodies["/cal.ics"] and first.etag == server.etag("/cal.ics")
    again = fetch_calendar(server.url + "/cal.ics", etag=first.etag, allow_private=True)
    assert again.body is None and again.etag == first.etag
    with pytest.raises(FetchFailed, match="answered 404"):
        fetch_calendar(server.url + "/missing.ics", allow_private=True)
    # 127.0.0.1 is this machine: refused unless allowed, before any request is made.
    asked = len(server.seen)
    with pytest.raises(FetchFailed, match="private network"):
        fetch_calendar(server.url + "/cal.ics")
    assert len(server.seen) == asked


def test_feed_addresses_are_sealed_with_the_key_and_read_back(team: Team) -> None:
    key, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    path = "/personal/cy-private-token-42.ics"
    team.server.bodies[path] = (FIXTURES / "google_time_off.ics").read_bytes()
    # Followed before the key was set: stored plain, as other settings are.
    with transaction(team.factory) as session:
        time_off_feeds.set_personal_feed(session, "UCY", team.server.url + path, "cy's calendar", now=NOW)
    assert team.read() > 0
    # With the key set, the next run seals every address it finds plain, and reads them.
    team.clock.advance(timedelta(hours=1))
    team.server.bodies[path] = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nEND:VCALENDAR\r\n"
    assert team.read(TOKEN_ENCRYPTION_KEY=key) > 0  # Cy's absences went with her calendar's events
    with team.factory() as session:
        stored = {f.label: f.url for f in session.scalars(select(TimeOffFeed))}
    assert all(is_sealed(url) for url in stored.values())
    assert "cy-private-token-42" not in stored["cy's calendar"]
    assert "private-0123456789abcdef" not in "".join(stored.values())
    assert team.server.seen[-1]["path"] in (path, SECRET_PATH)
    # A new address given with the key is sealed from the start.
    with transaction(team.factory) as session:
        time_off_feeds.set_personal_feed(
            session, "UADA", team.server.url + "/ada-token-7.ics", "ada's", now=NOW, key=key
        )
    with team.factory() as session:
        row = session.scalars(select(TimeOffFeed).where(TimeOffFeed.owner == "UADA")).one()
        assert "ada-token-7" not in row.url and unseal(row.url, key).endswith("/ada-token-7.ics")
    # The wrong key (or none): the feed is not read, and says why; nothing is lost.
    team.clock.advance(timedelta(hours=1))
    asked = len(team.server.seen)
    assert team.read(TOKEN_ENCRYPTION_KEY=other) == 0
    assert len(team.server.seen) == asked
    with team.factory() as session:
        errors = {f.label: f.last_error for f in session.scalars(select(TimeOffFeed))}
    assert errors["cy's calendar"] == "the stored address cannot be decrypted with TOKEN_ENCRYPTION_KEY"
    team.clock.advance(timedelta(hours=1))
    team.read()
    with team.factory() as session:
        errors = {f.label: f.last_error for f in session.scalars(select(TimeOffFeed))}
    assert "TOKEN_ENCRYPTION_KEY is not set" in (errors["cy's calendar"] or "")
    team.clock.advance(timedelta(hours=1))
    team.read(TOKEN_ENCRYPTION_KEY=key)
    with team.factory() as session:
        errors = {f.label: f.last_error for f in session.scalars(select(TimeOffFeed))}
    assert errors["cy's calendar"] is None


def test_a_feed_failing_for_days_is_told_to_its_owner_once(team: Team) -> None:
    path = "/personal/cy-private.ics"
    team.server.bodies[path] = (FIXTURES / "google_time_off.ics").read_bytes()
    with transaction(team.factory) as session:
        time_off_feeds.set_personal_feed(session, "UCY", team.server.url + path, "cy's calendar", now=NOW)

    def told(to: str) -> list[str]:
        return [dm["text"] for dm in team.dms() if dm["channel"] == to and "could not be read" in dm["text"]]

    team.read(MANAGERS="UMGR")  # both read well once
    team.server.status = 503  # then both fail
    for _ in range(48):  # hourly, for a little under two days from the first failure: an outage
        team.clock.advance(timedelta(hours=1))
        team.read(MANAGERS="UMGR")
    assert told("UCY") == [] and told("UMGR") == []
    team.clock.advance(timedelta(hours=1))
    team.read(MANAGERS="UMGR")
    assert len(told("UCY")) == 1 and len(told("UMGR")) == 1
    assert "since" in told("UCY")[0] and "answered 503" in told("UCY")[0]
    assert "/oncall away sync URL" in told("UCY")[0] and "TIME_OFF_ICAL_URLS" in told("UMGR")[0]
    assert "cy-private" not in told("UCY")[0] and "private-0123456789abcdef" not in told("UMGR")[0]
    # Once: later failing reads say nothing more.
    for _ in range(24):
        team.clock.advance(timedelta(hours=1))
        team.read(MANAGERS="UMGR")
    assert len(told("UCY")) == 1 and len(told("UMGR")) == 1
    # Both recover, then the team's fails for days again: that is news again.
    team.server.status = 200
    team.clock.advance(timedelta(hours=1))
    team.read(MANAGERS="UMGR")
    with team.factory() as session:
        assert all(f.failing_since is None for f in session.scalars(select(TimeOffFeed)))
        cy = session.scalars(select(TimeOffFeed).where(TimeOffFeed.owner == "UCY")).one()
        assert cy.last_good_at == team.clock.now()
    del team.server.bodies[SECRET_PATH]
    for _ in range(49):
        team.clock.advance(timedelta(hours=1))
        team.read(MANAGERS="UMGR")
    assert len(told("UMGR")) == 2 and len(told("UCY")) == 1


def test_an_address_that_never_worked_is_told_at_once(team: Team) -> None:
    with transaction(team.factory) as session:
        time_off_feeds.set_personal_feed(
            session, "UCY", team.server.url + "/typo-token.icz", "cy's calendar", now=NOW
        )
    team.read(MANAGERS="UMGR")
    dms = [dm["text"] for dm in team.dms() if dm["channel"] == "UCY" and "could not be read" in dm["text"]]
    assert len(dms) == 1 and "answered 404" in dms[0] and "Check the address" in dms[0]
    assert "typo-token" not in dms[0]
    # The team feed works: its managers hear nothing.
    assert not [dm for dm in team.dms() if dm["channel"] == "UMGR"]
    team.clock.advance(timedelta(hours=1))
    team.read(MANAGERS="UMGR")
    assert len([dm for dm in team.dms() if dm["channel"] == "UCY" and "could not be read" in dm["text"]]) == 1

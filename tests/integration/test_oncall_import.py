"""`/oncall import` end to end: a signed slash command opens the modal, its submission (a
calendar URL on a real HTTP server, or an .ics file picked in the modal and fetched from
Slack with the bot token) gives a preview DM, and Publish applies it and tells the team.
Non-managers are refused and nothing changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.sealed import unseal
from bot.slack import oncall_import as ui
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models_ical import RotaImport, TimeOffFeed
from rota import store
from rota.store import DutyView
from tests.support.calendar_server import CalendarServer, calendar_server
from tests.support.desk import desk_env
from tests.support.harness import CHANNEL, running_bot, wait_until
from tests.support.slack_requests import SlackUser

pytestmark = pytest.mark.timeout(180)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ical"
ROME = ZoneInfo("Europe/Rome")
ADA, BOB, CY, MAY = "U0ADA", "U0BOB", "U0CY", "U0MAY"
STAFF = {ADA: ("ada", "Ada Lovelace"), BOB: ("bob", "Bob Byron"), CY: ("cy", "Cy Young")}
# Monday 30 November 2026, 08:00 in Rome: an hour before the week's hand-off.
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=ROME)
FIRST_WEEK = datetime(2026, 10, 19, 9, 0, tzinfo=ROME)
ROTATION = [ADA, BOB, CY, ADA, BOB, CY, ADA, BOB, BOB, ADA, BOB, CY]


FEED_KEY = Fernet.generate_key().decode()


def week(n: int) -> datetime:
    return (FIRST_WEEK + timedelta(weeks=n)).astimezone(UTC)


@dataclass
class Team:
    bot: SupportBot
    slack: SlackStandIn
    factory: sessionmaker[Session]
    calendars: CalendarServer

    def user(self, user_id: str) -> SlackUser:
        return SlackUser(self.bot.url, self.slack, user_id)

    def oncall(self, user_id: str, text: str) -> dict[str, Any]:
        answer = self.user(user_id).command(text, command="/oncall")
        assert answer.status == 200, answer.body
        return answer.json()

    def open_modal(self) -> str:
        before = set(self.slack.views)
        self.oncall(MAY, "import")
        return wait_until(lambda: list(set(self.slack.views) - before), what="the import modal")[0]

    def preview(self, count: int = 1) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            channel = self.slack.dm_channels.get(MAY)
            hits = [m for m in self.slack.dms(MAY) if "Rota import (preview)" in m["text"]]
            return {**hits[-1], "channel": channel} if len(hits) >= count else None

        return wait_until(found, what="the preview DM")

    def duties(self) -> list[DutyView]:
        with self.factory() as session:
            return store.duties_between(session, week(0), week(12))


@pytest.fixture
def team(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[Team]:
    for user, (handle, name) in STAFF.items():
        slack.add_user(user, handle, name, channels=(CHANNEL,), email=f"{handle}@example.com")
    slack.add_user(MAY, "may", "May Manager")
    env = desk_env(
        slack,
        imap,
        database_url,
        MANAGERS=MAY,
        HOLIDAYS_COUNTRY="IT",
        ICAL_ALLOW_PRIVATE_HOSTS="true",
        TOKEN_ENCRYPTION_KEY=FEED_KEY,
        PUBLIC_URL="https://bot.example.com",
    )
    engine: Engine = make_engine(database_url)
    try:
        with calendar_server() as calendars, running_bot(env, clock=FrozenClock(NOW)) as bot:
            calendars.bodies["/private/pd-secret-token/support.ics"] = (
                FIXTURES / "pagerduty.ics"
            ).read_bytes()
            yield Team(bot, slack, make_sessionmaker(engine), calendars)
    finally:
        engine.dispose()


def test_a_manager_imports_a_pagerduty_calendar_by_its_address(team: Team) -> None:
    view_id = team.open_modal()
    url = team.calendars.url + "/private/pd-secret-token/support.ics"
    assert (
        team.user(MAY).submit(view_id, {ui.IMPORT_URL_BLOCK: url.replace("http://", "webcal://")}).status
        == 200
    )
    # webcal:// is read as https://, which this plain-HTTP server cannot answer: the reason comes by DM.
    refused = wait_until(
        lambda: next((m for m in team.slack.dms(MAY) if "could not import" in m["text"]), None),
        what="the reason the calendar could not be read",
    )
    assert "pd-secret-token" not in refused["text"]

    view_id = team.open_modal()
    assert team.user(MAY).submit(view_id, {ui.IMPORT_URL_BLOCK: url}).status == 200
    preview = team.preview()
    shown = json.dumps(preview["blocks"])
    assert "127.0.0.1" in shown and "pd-secret-token" not in shown, "the address is shown masked"
    assert all(f"<@{u}>" in shown for u in STAFF)
    assert team.duties() == [], "a preview changes nothing"

    team.user(MAY).click(preview, ui.ACTION_IMPORT_PUBLISH)
    summary = wait_until(
        lambda: [m for m in team.slack.messages(CHANNEL) if "published the on-call rota" in m["text"]],
        what="the channel summary",
    )
    assert len(summary) == 1
    by_start = {d.start: d for d in team.duties()}
    assert [by_start[week(n)].user_id for n in range(12)] == ROTATION
    assert all(d.pinned for d in by_start.values() if d.start >= NOW)
    # The preview is rewritten without its buttons; a second click (a stale copy) changes nothing.
    current = team.slack.find_message(preview["channel"], preview["ts"])
    assert current is not None and not any(b["type"] == "actions" for b in current.get("blocks") or [])
    team.user(MAY).click(preview, ui.ACTION_IMPORT_PUBLISH)
    wait_until(
        lambda: any("already" in e["text"] for e in team.slack.ephemerals(MAY)) or None,
        what="the answer to a second Publish",
    )
    assert len([m for m in team.slack.messages(CHANNEL) if "published the on-call rota" in m["text"]]) == 1


def test_an_uploaded_opsgenie_file_without_history(team: Team) -> None:
    view_id = team.open_modal()
    # Neither an address nor a file: the modal says so and stays open.
    refused = team.user(MAY).submit(view_id, {}).json()
    assert refused["response_action"] == "errors" and ui.IMPORT_URL_BLOCK in refused["errors"]

    picked = team.slack.user_file("support.ics", (FIXTURES / "opsgenie.ics").read_bytes())
    assert team.user(MAY).submit(view_id, {ui.IMPORT_FILE_BLOCK: [picked]}).status == 200
    preview = team.preview()
    shown = json.dumps(preview["blocks"])
    assert "support.ics" in shown and "Zed Outsider" in shown, "the unmatched event is listed"
    team.user(MAY).click(preview, ui.ACTION_IMPORT_FUTURE_ONLY)
    wait_until(lambda: [d for d in team.duties() if d.origin == "import"] or None, what="the imported duties")
    duties = team.duties()
    # No history; the week under way (the rota had none) is Cy's, as Opsgenie says.
    assert all(d.end > NOW for d in duties), "no history was imported"
    by_start = {d.start: d for d in duties}
    assert [by_start[week(n)].user_id for n in range(5, 12)] == ROTATION[5:]


def test_non_managers_are_refused_and_nothing_changes(team: Team) -> None:
    assert "Only managers" in team.oncall(ADA, "import")["text"]
    view_id = team.open_modal()
    # A submission or a click forged by a non-manager is refused the same way.
    url = team.calendars.url + "/private/pd-secret-token/support.ics"
    answer = team.user(ADA).submit(view_id, {ui.IMPORT_URL_BLOCK: url})
    assert answer.status == 200
    team.user(MAY).submit(view_id, {ui.IMPORT_URL_BLOCK: url})
    preview = team.preview()
    team.user(ADA).click(preview, ui.ACTION_IMPORT_PUBLISH)
    wait_until(
        lambda: any("Only managers" in e["text"] for e in team.slack.ephemerals(ADA)) or None,
        what="the refusal",
    )
    assert team.duties() == []
    assert len([m for m in team.slack.dms(MAY) if "Rota import (preview)" in m["text"]]) == 1


def test_following_your_own_calendar(team: Team) -> None:
    wait_until(lambda: _on_roster(team, ADA) or None, what="the roster, synced from Slack at start")
    secret = team.calendars.url + "/private/ada-secret-0123/basic.ics"
    said = team.oncall(ADA, f"away sync {secret}")["text"]
    assert "127.0.0.1" in said and "ada-secret-0123" not in said
    status = team.oncall(ADA, "away sync")["text"]
    assert "not read yet" in status and "ada-secret-0123" not in status
    # Stored encrypted (TOKEN_ENCRYPTION_KEY is set): the token is not in the database.
    with team.factory() as session:
        stored = session.scalars(select(TimeOffFeed).where(TimeOffFeed.owner == ADA)).one().url
    assert "ada-secret-0123" not in stored and unseal(stored, FEED_KEY) == secret
    # Read by the leader's job: the calendar is not there yet, and the status says so, and since when.
    team.bot.jobs.read_time_off_feeds()
    status = team.oncall(ADA, "away sync")["text"]
    assert "failed: the calendar server answered 404" in status and "failing since" in status
    assert "127.0.0.1" in status and "ada-secret-0123" not in status
    team.calendars.bodies["/private/ada-secret-0123/basic.ics"] = (FIXTURES / "opsgenie.ics").read_bytes()
    clock = team.bot.jobs.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(hours=1))
    team.bot.jobs.read_time_off_feeds()
    status = team.oncall(ADA, "away sync")["text"]
    assert "last read" in status and "failed" not in status and "ada-secret-0123" not in status
    assert "https://" in team.oncall(ADA, "away sync ftp://example.com/x.ics")["text"]
    assert "no longer followed" in team.oncall(ADA, "away sync off")["text"]
    assert "No calendar of yours" in team.oncall(ADA, "away sync")["text"]


def _on_roster(team: Team, user: str) -> bool:
    with team.factory() as session:
        return store.member(session, user) is not None


def test_a_preview_nobody_publishes_expires(team: Team) -> None:
    view_id = team.open_modal()
    url = team.calendars.url + "/private/pd-secret-token/support.ics"
    assert team.user(MAY).submit(view_id, {ui.IMPORT_URL_BLOCK: url}).status == 200
    preview = team.preview()
    clock = team.bot.jobs.clock
    assert isinstance(clock, FrozenClock)
    # A day on, it is still there to publish.
    clock.advance(timedelta(days=1))
    assert team.bot.jobs.expire_rota_imports() == 0
    clock.advance(timedelta(days=1, minutes=1))
    assert team.bot.jobs.expire_rota_imports() == 1
    assert team.bot.jobs.expire_rota_imports() == 0
    with team.factory() as session:
        staged = session.scalars(select(RotaImport)).one()
        assert (staged.outcome, staged.shifts, staged.unmatched) == ("expired", [], [])
    # Publish on the old preview changes nothing, and says why.
    team.user(MAY).click(preview, ui.ACTION_IMPORT_PUBLISH)
    wait_until(
        lambda: any("expired" in e["text"] for e in team.slack.ephemerals(MAY)) or None,
        what="the answer to Publish on an expired preview",
    )
    assert team.duties() == []

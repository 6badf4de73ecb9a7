"""Hand-offs: a reminder the day before, the hand-over at duty start (DM, channel post,
topic, @oncall group), each once, however late or often the job runs; the ledger
settled as duties end; the rota kept planned ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.config import Settings
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack.handoffs import rota_tick
from bot.storage.db import transaction
from bot.storage.models import Event, LedgerLine, OutboxItem
from rota import store, swaps
from rota.store import StaffMember
from tests.support.desk import settle_outbox
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.settings import settings_for as harness_settings

ROME = ZoneInfo("Europe/Rome")
# Sunday 2026-11-29 10:00 in Rome: the first full week's hand-off is tomorrow at 09:00.
SUNDAY = datetime(2026, 11, 29, 10, 0, tzinfo=ROME).astimezone(UTC)
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=ROME).astimezone(UTC)
TEAM = [StaffMember("UADA", "Ada", "Europe/Rome"), StaffMember("UBOB", "Bob", "Europe/Rome")]


def settings_for(database_url: str, **overrides: str) -> Settings:
    return harness_settings(database_url, **{"ONCALL_USERGROUP": "S0ONCALL", **overrides})


def start_rota(factory: sessionmaker[Session], settings: Settings, now: datetime) -> None:
    with transaction(factory) as session:
        store.sync_roster(session, TEAM, now)
        preview = store.preview_plan(
            session, settings.calendar(), settings.plan_config(), now=now, until=now + timedelta(weeks=3)
        )
        store.publish_plan(session, preview, by="UMGR", now=now)


def tick(factory: sessionmaker[Session], settings: Settings, now: datetime) -> None:
    with transaction(factory) as session:
        rota_tick(session, settings, settings.calendar(), now)


def effects(factory: sessionmaker[Session]) -> list[tuple[str, str]]:
    with factory() as session:
        rows = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        return [
            (
                row.kind,
                str(row.payload.get("channel") or row.payload.get("usergroup") or row.payload.get("user")),
            )
            for row in rows
        ]


def test_reminder_and_hand_off_happen_once_each(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    settings = settings_for(database_url)
    start_rota(session_factory, settings, SUNDAY)
    with session_factory() as session:
        week = store.duty_at(session, MONDAY_9)
        first = store.duty_at(session, SUNDAY)
    assert week is not None and first is not None and week.user_id != first.user_id

    tick(session_factory, settings, SUNDAY)
    tick(session_factory, settings, SUNDAY + timedelta(minutes=1))
    got = effects(session_factory)
    # The duty under way when the rota was published is handed over at once;
    # tomorrow's holder is reminded once.
    assert got.count(("slack.post", week.user_id)) == 1
    assert ("slack.post", CHANNEL) in got and ("slack.set_topic", CHANNEL) in got
    assert ("slack.usergroup_users", "S0ONCALL") in got
    before = len(got)

    tick(session_factory, settings, MONDAY_9 + timedelta(seconds=30))
    tick(session_factory, settings, MONDAY_9 + timedelta(minutes=1))
    after = effects(session_factory)[before:]
    assert sorted(after) == sorted(
        [
            ("slack.post", week.user_id),  # "you are on call now"
            ("slack.post", CHANNEL),
            ("slack.set_topic", CHANNEL),
            ("slack.usergroup_users", "S0ONCALL"),
            ("slack.dnd_check", week.user_id),  # paused notifications would silence pages
        ]
    )
    with session_factory() as session:
        rows = session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.usergroup_users")).all()
        assert rows[-1].payload["users"] == [week.user_id]
        texts = [r.payload.get("text", "") for r in session.scalars(select(OutboxItem)).all()]
    assert any("Reminder: you are on call" in t for t in texts)
    assert any(f"<@{week.user_id}> is on call until" in t and f"from <@{first.user_id}>" in t for t in texts)


def test_after_a_long_outage_only_the_current_duty_is_handed_over(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    settings = settings_for(database_url, ROTA_UNIT="night")
    start_rota(session_factory, settings, SUNDAY)
    tick(session_factory, settings, SUNDAY)
    before = len(effects(session_factory))
    # Down from Sunday to Wednesday noon: three nightly hand-offs were missed.
    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=ROME).astimezone(UTC)
    tick(session_factory, settings, wednesday)
    tick(session_factory, settings, wednesday + timedelta(minutes=1))
    with session_factory() as session:
        current = store.duty_at(session, wednesday)
        missed = session.scalars(select(Event).where(Event.action == "rota.handoff_missed")).all()
        channel_posts = [
            row
            for row in session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()[before:]
            if row.kind == "slack.post" and row.payload["channel"] == CHANNEL
        ]
    assert current is not None
    assert len(missed) == 2
    assert [p.dedupe_key for p in channel_posts] == [f"handoff:{current.id}:channel"]


def test_the_ledger_is_settled_when_a_duty_ends_and_the_rota_is_topped_up(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    settings = settings_for(database_url, ROTA_PLAN_WEEKS="4")
    start_rota(session_factory, settings, SUNDAY)
    next_week = MONDAY_9 + timedelta(weeks=1, minutes=5)
    tick(session_factory, settings, next_week)
    tick(session_factory, settings, next_week + timedelta(minutes=1))
    with session_factory() as session:
        week = store.duty_at(session, MONDAY_9)
        earned = session.scalars(select(LedgerLine).order_by(LedgerLine.at)).all()
        end = store.rota_end(session)
    assert week is not None
    # Sunday 10:00 → Monday 09:00 is 23 hours (0.14 day); the first full week is one day.
    assert [(e.user_id, str(e.amount)) for e in earned][-1] == (week.user_id, "1.0000")
    assert len(earned) == 2
    assert end is not None and end >= next_week + timedelta(weeks=4)


def test_hand_off_reaches_slack_through_the_outbox(tmp_path: Path, database_url: str) -> None:
    """The real bot: DM, channel post, topic (keeping what people wrote there) and @oncall group."""
    with SlackStandIn(channels=(CHANNEL,)) as slack, PymapServer(tmp_path / "imap") as imap:
        for member in TEAM:
            slack.add_user(
                member.user_id, member.name.lower(), member.name, tz=member.tz, channels=(CHANNEL,)
            )
        slack.topics[CHANNEL] = "Support for ACME customers"
        slack.usergroups["S0ONCALL"] = {"id": "S0ONCALL", "handle": "oncall", "users": []}
        clock = FrozenClock(SUNDAY)
        env = bot_env(
            slack_url=slack.base_url, imap=imap, database_url=database_url, ONCALL_USERGROUP="S0ONCALL"
        )
        with running_bot(env, clock=clock) as bot:
            bot.jobs.sync_roster()
            with bot.factory() as session:
                assert [m.user_id for m in store.members(session)] == ["UADA", "UBOB"]
            start_rota(bot.factory, bot.settings, SUNDAY)
            bot.jobs.rota_tick()
            with bot.factory() as session:
                holder = store.duty_at(session, SUNDAY)
            assert holder is not None and holder.user_id is not None
            wait_until(
                lambda: slack.usergroups["S0ONCALL"]["users"] == [holder.user_id], what="@oncall group"
            )
            wait_until(lambda: slack.topics[CHANNEL].startswith("On call: "), what="topic")
            assert slack.topics[CHANNEL].endswith(" | Support for ACME customers")
            dm = slack.dm_channels[holder.user_id]
            wait_until(lambda: any("You are on call now" in p.text for p in slack.posts[dm]), what="DM")
            wait_until(lambda: any("is on call until" in p.text for p in slack.posts[CHANNEL]), what="post")

            # Bob covers the rest of the duty under way: the hand-over follows him.
            taker = next(m.user_id for m in TEAM if m.user_id != holder.user_id)
            clock.advance(timedelta(hours=2))
            with transaction(bot.factory) as session:
                swaps.cover_duty(session, holder.id, user=taker, now=clock.now(), approval=False)
            bot.jobs.rota_tick()
            wait_until(
                lambda: slack.usergroups["S0ONCALL"]["users"] == [taker], what="@oncall follows the cover"
            )
            name = next(m.name for m in TEAM if m.user_id == taker)
            wait_until(
                lambda: slack.topics[CHANNEL] == f"On call: {name} | Support for ACME customers", what="topic"
            )


def test_a_user_group_slack_will_not_let_the_bot_change_is_one_notice_to_the_managers(
    tmp_path: Path, database_url: str
) -> None:
    """A bot token may change a group's members only if everyone may manage user groups:
    otherwise Slack answers permission_denied, and only a person can fix that."""
    with SlackStandIn(channels=(CHANNEL,)) as slack, PymapServer(tmp_path / "imap") as imap:
        for member in TEAM:
            slack.add_user(
                member.user_id, member.name.lower(), member.name, tz=member.tz, channels=(CHANNEL,)
            )
        slack.add_user("UMAY", "may", "May Manager")
        slack.usergroups["S0ONCALL"] = {"id": "S0ONCALL", "handle": "oncall", "users": []}
        slack.everyone_manages_usergroups = False
        clock = FrozenClock(SUNDAY)
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=database_url,
            ONCALL_USERGROUP="S0ONCALL",
            MANAGERS="UMAY",
        )
        with running_bot(env, clock=clock) as bot:
            bot.jobs.sync_roster()
            start_rota(bot.factory, bot.settings, SUNDAY)
            bot.jobs.rota_tick()

            def notices() -> list[str]:
                return [m["text"] for m in slack.dms("UMAY") if "user group" in m.get("text", "")]

            told = wait_until(notices, what="the managers told")
            assert "permission_denied" in told[0] and "Workspace settings" in told[0]
            assert "ONCALL_USERGROUP" in told[0]

            def refused() -> list[OutboxItem]:
                with bot.factory() as session:
                    return list(
                        session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.usergroup_users"))
                    )

            wait_until(lambda: all(r.status == "dead" for r in refused()), what="the row set aside")
            assert [r.attempts for r in refused()] == [1], "not tried again"
            # The next hand-over is refused too: no second notice.
            clock.advance(timedelta(days=1))
            bot.jobs.rota_tick()
            wait_until(
                lambda: len(refused()) == 2 and all(r.status == "dead" for r in refused()), what="next"
            )
            settle_outbox(bot.factory)
            assert len(notices()) == 1
            assert slack.usergroups["S0ONCALL"]["users"] == []

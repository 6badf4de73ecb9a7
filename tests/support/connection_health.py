"""Connection health as Slack shows it: the outage and recovery notices in the channel and
managers' DMs, and the frozen clock moved on a minute at a time with the health tick run by hand,
as the leader's scheduler runs it every half minute. Shared by the health and mail OAuth tests."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.health.connections import Service
from bot.outbox.worker import outbox_stats
from bot.storage.models_health import ConnectionHealth
from tests.support.harness import CHANNEL, wait_until

MANAGERS = ("UMANAGER1", "UMANAGER2")
OUTAGE = "is not working"
RECOVERY = "works again*"  # the bold headline, not the outage's "as soon as it works again"


def health_row(bot: SupportBot, service: Service) -> ConnectionHealth | None:
    with bot.factory() as session:
        return session.scalar(select(ConnectionHealth).where(ConnectionHealth.service == str(service)))


def failing(bot: SupportBot, service: Service) -> bool:
    row = health_row(bot, service)
    return row is not None and row.failing_since is not None


def error_kind(bot: SupportBot, service: Service) -> str | None:
    row = health_row(bot, service)
    return row.error_kind if row is not None and row.failing_since is not None else None


def notices(slack, marker: str) -> dict[str, list[str]]:
    """The health posts holding `marker`: in the channel, and in each manager's DMs."""
    found = {CHANNEL: [m["text"] for m in slack.messages(CHANNEL) if marker in m["text"]]}
    for manager in MANAGERS:
        found[manager] = [m["text"] for m in slack.dms(manager) if marker in m["text"]]
    return found


def once_each(slack, marker: str) -> bool:
    return all(len(texts) == 1 for texts in notices(slack, marker).values())


def quiet(bot: SupportBot) -> bool:
    return outbox_stats(bot.factory, bot.clock.now()).get("pending", 0) == 0


def minutes_pass(bot: SupportBot, clock: FrozenClock, count: int) -> None:
    for _ in range(count):
        clock.advance(timedelta(minutes=1))
        bot.jobs.health_tick()


def outage_told_after_ten_minutes(bot: SupportBot, clock: FrozenClock, slack) -> str:
    """Two minutes of failure are a blip, told to nobody; at ten the outage is told once in the
    channel and to each manager. Returns the channel's notice."""
    minutes_pass(bot, clock, 2)
    wait_until(lambda: quiet(bot), what="the outbox idle")
    assert notices(slack, OUTAGE) == {CHANNEL: [], **{m: [] for m in MANAGERS}}, "two minutes: a blip"
    minutes_pass(bot, clock, 8)
    wait_until(lambda: once_each(slack, OUTAGE), what="the outage told in the channel and to managers")
    return notices(slack, OUTAGE)[CHANNEL][0]

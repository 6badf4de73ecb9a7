"""Every listener acknowledges within a second however slow Slack's Web API is: Slack gives an
app three seconds, shows `operation_timeout` after that, and a modal opened later than three
seconds after the click fails with `expired_trigger_id`.

The Web API stand-in adds 300 ms to every call and the support channel has 15 people, so work
that asks Slack before acknowledging (the roster: one `users.info` per person) shows at once.
The bot runs over Socket Mode, where the stand-in times each acknowledgement exactly."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack import oncall as ui
from bot.storage.db import make_engine, make_sessionmaker
from rota import store
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.socket_mode import SocketModeStandIn, SocketUser

pytestmark = pytest.mark.timeout(180)

START = datetime(2026, 12, 2, 12, 0, tzinfo=ZoneInfo("Europe/Rome"))
MAY = "U0MAY"
STAFF = [f"U0S{n:02d}" for n in range(15)]
SLACK_LATENCY = 0.3
ACK_BUDGET = 1.0


def test_oncall_acknowledges_within_a_second_when_slack_is_slow(
    imap: PymapServer, slack: SlackStandIn, database_url: str
) -> None:
    for user in STAFF:
        slack.add_user(user, user.lower(), f"Staff {user}", channels=(CHANNEL,))
    slack.add_user(MAY, "may", "May Manager")
    env = bot_env(
        slack_url=slack.base_url,
        imap=imap,
        database_url=database_url,
        SLACK_APP_TOKEN="xapp-1-A0SUPPORTBOT-1-test",
        SLACK_SIGNING_SECRET="",
        MANAGERS=MAY,
    )
    with SocketModeStandIn(slack) as socket:
        # A rota published while Slack was quick...
        with running_bot(env, clock=FrozenClock(START)):
            socket.wait_connected()
            preview = SocketUser(socket, MAY).command("plan 4", command="/oncall").json()
            message = {
                "ts": "1.000100",
                "blocks": preview["blocks"],
                "is_ephemeral": True,
                "channel": CHANNEL,
            }
            SocketUser(socket, MAY).click(message, ui.ACTION_PUBLISH)
            wait_until(lambda: any("Published" in e["text"] for e in slack.ephemerals(MAY)), what="publish")
        engine = make_engine(database_url)
        with make_sessionmaker(engine)() as session:
            holder = next(
                d.user_id
                for d in store.duties_between(session, START, START + timedelta(weeks=4))
                if d.start > START
            )
        engine.dispose()

        # ...then a restart (nothing cached) while every Web API call takes 300 ms.
        slack.latency = SLACK_LATENCY
        with running_bot(env, clock=FrozenClock(START)):
            socket.wait_connected(2)
            user = SocketUser(socket, holder)
            for verb in ("", "me", "swap"):
                try:
                    user.command(verb, command="/oncall")
                except TimeoutError:
                    pytest.fail(f"/oncall {verb} never acknowledged: Slack shows operation_timeout")
                took = socket.acks()[-1].seconds
                assert took < ACK_BUDGET, f"/oncall {verb} acknowledged after {took:.2f}s"
            # The modal opened with the command's trigger_id, within Slack's three seconds.
            wait_until(lambda: slack.open_modal(holder), timeout=5, what="the swap modal")

"""Socket Mode end to end: the real bot with slack_sdk's built-in Socket Mode client, connected
through `apps.connections.open` to a local WebSocket server that speaks Slack's side of the
protocol (bot/sandbox/socket_mode.py); what the bot answers lands in the Web API stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack import oncall as ui
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.socket_mode import SocketModeStandIn, SocketUser

pytestmark = pytest.mark.timeout(120)

ADA, BOB, MAY = "U0ADA", "U0BOB", "U0MAY"
START = datetime(2026, 12, 2, 12, 0, tzinfo=ZoneInfo("Europe/Rome"))


@dataclass
class Linked:
    bot: SupportBot
    slack: SlackStandIn
    socket: SocketModeStandIn

    def user(self, user_id: str) -> SocketUser:
        return SocketUser(self.socket, user_id)


@pytest.fixture
def linked(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[Linked]:
    slack.add_user(ADA, "ada", "Ada Staff", channels=(CHANNEL,))
    slack.add_user(BOB, "bob", "Bob Staff", channels=(CHANNEL,))
    slack.add_user(MAY, "may", "May Manager")
    env = bot_env(
        slack_url=slack.base_url,
        imap=imap,
        database_url=database_url,
        SLACK_APP_TOKEN="xapp-1-A0SUPPORTBOT-1-test",
        SLACK_SIGNING_SECRET="",
        MANAGERS=MAY,
    )
    with SocketModeStandIn(slack) as socket, running_bot(env, clock=FrozenClock(START)) as bot:
        socket.wait_connected()
        yield Linked(bot, slack, socket)


def published_by(linked: Linked, manager: str) -> None:
    """`/oncall plan 2`, then a click on its Publish button: both over the socket."""
    preview = linked.user(manager).command("plan 2", command="/oncall").json()
    assert "oncall_plan_publish" in json.dumps(preview["blocks"])
    message = {
        "ts": "1700000000.000100",
        "blocks": preview["blocks"],
        "is_ephemeral": True,
        "channel": CHANNEL,
    }
    assert linked.user(manager).click(message, ui.ACTION_PUBLISH).status == 200
    wait_until(
        lambda: any("Published" in e["text"] for e in linked.slack.ephemerals(manager)),
        what="the publish outcome through response_url",
    )


def test_a_command_a_click_and_a_modal_over_the_socket(linked: Linked) -> None:
    assert linked.slack.calls("apps.connections.open")
    published_by(linked, MAY)
    # The click's effects reach Slack through the outbox: a DM to each person on the rota.
    wait_until(lambda: linked.slack.dms(ADA), what="a DM about the published rota")

    # A modal: `/oncall swap` opens it with the command's trigger, its submission comes in an
    # `interactive` envelope, and the listener's answer rides on the acknowledgement.
    assert linked.user(ADA).command("swap", command="/oncall").status == 200
    modal = wait_until(lambda: linked.slack.open_modal(ADA), what="the swap modal")
    answer = linked.user(ADA).submit(modal["id"], {ui.SWAP_DUTY_BLOCK: None})
    assert answer.json() == {
        "response_action": "errors",
        "errors": {ui.SWAP_DUTY_BLOCK: "Pick one of your duties."},
    }


def test_the_bot_reconnects_after_a_refresh_and_after_a_dropped_socket(linked: Linked) -> None:
    assert linked.socket.connections == 1
    linked.socket.refresh()
    linked.socket.wait_connected(2)
    assert "On call" in json.dumps(linked.user(ADA).command("", command="/oncall").json())

    # A socket cut without a closing handshake (a NAT or a proxy forgetting it) is noticed
    # by the client's pings.
    linked.socket.drop()
    linked.socket.wait_connected(3, timeout=30)
    assert "On call" in json.dumps(linked.user(BOB).command("", command="/oncall").json())
    # Each socket came from a new URL, as Slack's carry a one-time ticket.
    assert len(linked.slack.calls("apps.connections.open")) == linked.socket.connections == 3


def test_a_redelivered_envelope_is_handled_once(linked: Linked) -> None:
    event = {
        "token": "legacy",
        "team_id": "T0TEAM",
        "api_app_id": "A0SUPPORTBOT",
        "type": "event_callback",
        "event_id": "Ev0REDELIVERED",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": ADA, "channel": "D0HOME", "tab": "home"},
    }
    socket = linked.socket
    socket.wait_ack(socket.deliver("events_api", event))
    linked.slack.wait_for("views.publish")
    # Slack did not hear the acknowledgement in time and sends the very same payload again.
    again = socket.deliver("events_api", event, retry_attempt=1, retry_reason="timeout")
    assert socket.wait_ack(again).payload is None  # acknowledged, so Slack stops retrying
    time.sleep(1.0)  # time enough for a second listener run to call Slack
    assert len(linked.slack.calls("views.publish")) == 1

    # A command delivered twice (the same payload, so the same trigger_id) is answered once.
    command = {
        "team_id": "T0TEAM",
        "channel_id": CHANNEL,
        "user_id": ADA,
        "command": "/oncall",
        "text": "",
        "api_app_id": "A0SUPPORTBOT",
        "response_url": linked.slack.issue_response_url(ADA, CHANNEL),
        "trigger_id": linked.slack.issue_trigger(ADA),
    }
    first = socket.wait_ack(socket.deliver("slash_commands", command))
    assert first.payload is not None and "On call" in json.dumps(first.payload)
    assert socket.wait_ack(socket.deliver("slash_commands", command)).payload is None

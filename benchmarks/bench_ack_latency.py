"""Acknowledgement latency of every slash command and button, with a slow Slack.

The bot runs as in production over Socket Mode (slack_sdk's built-in client against the
Socket Mode stand-in), with 15 people in the support channel, a published rota, and a
Web API stand-in that adds 300 ms to every call. Each command verb and each button is sent
`rounds` times, one after another; the first round comes right after a restart, when nothing
is cached. The figure is the time from Slack sending the envelope to the bot's
acknowledgement: Slack shows `operation_timeout` after 3 s; the target is p99 < 1 s.

Buttons carry made-up ids (ticket 1, swap 1, …): the listener acknowledges before it reads
them, which is what is measured; the answers that follow are not.

    .venv/bin/python -m benchmarks.bench_ack_latency [rounds] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks._setup import fresh_sqlite, machine, percentile
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack import oncall as oncall_ui
from bot.slack import oncall_import as import_ui
from bot.slack import render
from bot.slack.after_hours import ACTION_AUTOMATE, ACTION_AUTOMATION_OFF
from bot.slack.paging import ACTION_ACK, ACTION_CLAIM
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.socket_mode import SocketModeStandIn, SocketUser

START = datetime(2026, 12, 2, 12, 0, tzinfo=ZoneInfo("Europe/Rome"))
MANAGER = "U0MAY"
STAFF = [f"U0S{n:02d}" for n in range(15)]
BUDGET = 1.0

# (command, text, who): every verb of both commands; manager verbs by the manager.
COMMANDS: list[tuple[str, str, str]] = [
    *[
        ("/support", verb, STAFF[0])
        for verb in (
            "help",
            "open",
            "mine",
            "ticket 1",
            "customer ada@example.com",
            "search printer",
            "claim 1",
            "unclaim 1",
            "resolve 1",
            "reopen 1",
            "templates",
            "rules",
            "automation",
            "spam",
            "stats",
            "status",
        )
    ],
    ("/support", "template new", MANAGER),
    ("/support", "customer export ada@example.com", MANAGER),
    ("/support", "customer erase ada@example.com", MANAGER),
    *[
        ("/oncall", verb, STAFF[0])
        for verb in (
            "",
            "help",
            "me",
            "away",
            "away sync",
            "swap",
            "cover",
            "comp",
            "ical",
            "phone",
            "phone +39 333 123 4567",
            "test",
        )
    ],
    *[("/oncall", verb, MANAGER) for verb in ("plan 4", "fairness", "roster", "import")],
]

# (action_id, element type, value, who)
BUTTONS: list[tuple[str, str, str, str]] = [
    (render.ACTION_CLAIM, "button", "1", STAFF[0]),
    (render.ACTION_RESOLVE, "button", "1", STAFF[0]),
    (render.ACTION_REPLY, "button", "1", STAFF[0]),
    (render.ACTION_TAG, "button", "1", STAFF[0]),
    (render.ACTION_MORE, "overflow", "unclaim:1", STAFF[0]),
    (render.ACTION_NOT_SPAM, "button", "1", STAFF[0]),
    (ACTION_ACK, "button", "1", STAFF[0]),
    (ACTION_CLAIM, "button", "1", STAFF[0]),
    (oncall_ui.ACTION_OFFER, "button", "1", STAFF[0]),
    (oncall_ui.ACTION_CANCEL_TIME_OFF, "button", "1", STAFF[0]),
    (oncall_ui.ACTION_ACCEPT, "button", "1", STAFF[0]),
    (oncall_ui.ACTION_DECLINE, "button", "1", STAFF[0]),
    (oncall_ui.ACTION_WITHDRAW, "button", "1", STAFF[0]),
    (oncall_ui.ACTION_APPROVE, "button", "1", MANAGER),
    (oncall_ui.ACTION_REJECT, "button", "1", MANAGER),
    (oncall_ui.ACTION_PUBLISH, "button", (START + timedelta(weeks=1)).isoformat(), MANAGER),
    (oncall_ui.ACTION_DISCARD, "button", "x", MANAGER),
    (ACTION_AUTOMATE, "button", "welcome", MANAGER),
    (ACTION_AUTOMATION_OFF, "button", "welcome", MANAGER),
    (import_ui.ACTION_IMPORT_PUBLISH, "button", "1", MANAGER),
    (import_ui.ACTION_IMPORT_CANCEL, "button", "1", MANAGER),
]


def click_payload(slack: SlackStandIn, user: str, action_id: str, kind: str, value: str) -> dict[str, Any]:
    action: dict[str, Any] = {"action_id": action_id, "block_id": "b", "type": kind, "action_ts": "1.0"}
    if kind == "overflow":
        action["selected_option"] = {"text": {"type": "plain_text", "text": value}, "value": value}
    else:
        action["value"] = value
    return {
        "type": "block_actions",
        "team": {"id": "T0TEAM"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0SUPPORTBOT",
        "trigger_id": slack.issue_trigger(user),
        "container": {"type": "message", "message_ts": "1.000100", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "support"},
        "message": {"ts": "1.000100", "text": "", "blocks": []},
        "response_url": slack.issue_response_url(user, CHANNEL),
        "actions": [action],
    }


def main(rounds: int, latency: float) -> None:
    samples: dict[str, list[float]] = defaultdict(list)
    with (
        fresh_sqlite() as (url, tmp),
        PymapServer(tmp / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
        SocketModeStandIn(slack) as socket,
    ):
        for user in STAFF:
            slack.add_user(user, user.lower(), f"Staff {user}", channels=(CHANNEL,))
        slack.add_user(MANAGER, "may", "May Manager")
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=url,
            SLACK_APP_TOKEN="xapp-1-A0SUPPORTBOT-1-bench",
            SLACK_SIGNING_SECRET="",
            MANAGERS=MANAGER,
        )
        # A rota published while Slack is quick, so duty-related verbs have something to show.
        with running_bot(env, clock=FrozenClock(START)):
            socket.wait_connected()
            manager = SocketUser(socket, MANAGER)
            preview = manager.command("plan 4", command="/oncall").json()
            message = {
                "ts": "1.000100",
                "blocks": preview["blocks"],
                "is_ephemeral": True,
                "channel": CHANNEL,
            }
            manager.click(message, oncall_ui.ACTION_PUBLISH)
            wait_until(
                lambda: any("Published" in e["text"] for e in slack.ephemerals(MANAGER)), what="publish"
            )

        slack.latency = latency
        with running_bot(env, clock=FrozenClock(START)):
            socket.wait_connected(2)
            for _ in range(rounds):
                for command, text, who in COMMANDS:
                    payload = {
                        "team_id": "T0TEAM",
                        "channel_id": CHANNEL,
                        "channel_name": "support",
                        "user_id": who,
                        "user_name": who.lower(),
                        "command": command,
                        "text": text,
                        "api_app_id": "A0SUPPORTBOT",
                        "response_url": slack.issue_response_url(who, CHANNEL),
                        "trigger_id": slack.issue_trigger(who),
                    }
                    name = f"{command} {text.split(' ')[0]}".strip()
                    samples[name].append(measure(socket, "slash_commands", payload))
                for action_id, kind, value, who in BUTTONS:
                    payload = click_payload(slack, who, action_id, kind, value)
                    samples[f"button {action_id}"].append(measure(socket, "interactive", payload))
            # Let the follow-ups (answers through response_url, modals) finish before stopping.
            time.sleep(3 * latency + 1)

    everything = [s for values in samples.values() for s in values]
    print(f"ack latency, Socket Mode, {latency * 1000:.0f} ms per Web API call, {len(STAFF)} staff")
    print(f"machine: {machine()}; {rounds} rounds, the first right after a restart")
    print(f"{'listener':<36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in sorted(samples.items()):
        print(
            f"{name:<36} {percentile(values, 50) * 1000:8.0f} {percentile(values, 99) * 1000:8.0f}"
            f" {max(values) * 1000:8.0f}"
        )
    p99 = percentile(everything, 99)
    print(
        f"{'overall (' + str(len(everything)) + ' acks)':<36} {percentile(everything, 50) * 1000:8.0f}"
        f" {p99 * 1000:8.0f} {max(everything) * 1000:8.0f}"
    )
    print(json.dumps({"p50": percentile(everything, 50), "p99": p99, "target_met": p99 < BUDGET}))


def measure(socket: SocketModeStandIn, kind: str, payload: dict[str, Any]) -> float:
    try:
        return socket.wait_ack(socket.deliver(kind, payload), timeout=10).seconds
    except TimeoutError:
        return 10.0  # never acknowledged: Slack showed operation_timeout


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("rounds", nargs="?", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.3)
    options = parser.parse_args()
    main(options.rounds, options.latency)

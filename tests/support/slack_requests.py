"""Requests into the bot's real endpoint, shaped and signed the way Slack sends them.

A `SlackUser` clicks buttons on messages the stand-in holds, runs slash commands,
picks options in and submits the modals the bot opened, and writes in threads.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot.sandbox.slack_api import TEAM, SlackStandIn
from tests.support.harness import CHANNEL, SIGNING_SECRET

APP_ID = "A0SUPPORTBOT"
_triggers = itertools.count(1)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> dict[str, Any]:
        """The answer as Slack reads it: Bolt sends a text-only ack as plain text."""
        if not self.body:
            return {}
        try:
            return dict(json.loads(self.body))
        except ValueError:
            return {"text": self.body.decode()}


def signed_request(
    url: str,
    body: bytes,
    *,
    content_type: str,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> Answer:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read())


class SlackUser:
    def __init__(self, bot_url: str, slack: SlackStandIn, user_id: str, name: str | None = None) -> None:
        self.url = f"{bot_url}/slack/events"
        self.slack = slack
        self.id = user_id
        self.name = name or user_id.lower()

    def _user(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.name, "name": self.name, "team_id": TEAM}

    def _interaction(self, payload: dict[str, Any], **signing: Any) -> Answer:
        base = {"team": {"id": TEAM}, "user": self._user(), "api_app_id": APP_ID, "token": "legacy"}
        body = urllib.parse.urlencode({"payload": json.dumps({**base, **payload})}).encode()
        return signed_request(self.url, body, content_type="application/x-www-form-urlencoded", **signing)

    # -- messages ----------------------------------------------------------------------

    def click(
        self, message: dict[str, Any], action_id: str, *, option: str | None = None, **signing: Any
    ) -> Answer:
        """Press a button (or pick an overflow option) on a message the bot posted."""
        action = _find_element(message.get("blocks") or [], action_id)
        clicked: dict[str, Any] = {
            "action_id": action_id,
            "block_id": action["block_id"],
            "type": action["type"],
            "action_ts": f"{time.time():.6f}",
        }
        if action["type"] == "overflow":
            chosen = next(o for o in action["options"] if o["value"].startswith(f"{option}:"))
            clicked["selected_option"] = chosen
        else:
            clicked["value"] = action["value"]
        channel = message.get("channel", CHANNEL)
        return self._interaction(
            {
                "type": "block_actions",
                "trigger_id": f"{next(_triggers)}.trigger",
                "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel},
                "channel": {"id": channel, "name": "support"},
                "message": message,
                "actions": [clicked],
            },
            **signing,
        )

    # -- modals ---------------------------------------------------------------------------

    def pick(self, view_id: str, action_id: str, value: str) -> Answer:
        """Choose an option of a select inside an open modal (fires block_actions)."""
        view = self.slack.views[view_id]
        element = _find_element(view["blocks"], action_id)
        options = element.get("options") or [
            o for g in element.get("option_groups", []) for o in g["options"]
        ]
        chosen = next(o for o in options if o["value"] == value)
        return self._interaction(
            {
                "type": "block_actions",
                "trigger_id": f"{next(_triggers)}.trigger",
                "container": {"type": "view", "view_id": view_id},
                "view": {**view, "state": {"values": {}}},
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": element["block_id"],
                        "type": element["type"],
                        "selected_option": chosen,
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
            }
        )

    def submit(self, view_id: str, values: dict[str, Any] | None = None) -> Answer:
        """Submit a modal. `values` maps block_id → value (str, list of str, or a user id for
        users_select); inputs not given are submitted with their initial value, as Slack does."""
        view = self.slack.views[view_id]
        state: dict[str, dict[str, Any]] = {}
        for block in view["blocks"]:
            if block.get("type") != "input":
                continue
            element = block["element"]
            given = (values or {}).get(block["block_id"], element.get("initial_value"))
            state[block["block_id"]] = {element["action_id"]: _element_state(element, given)}
        return self._interaction(
            {
                "type": "view_submission",
                "trigger_id": f"{next(_triggers)}.trigger",
                "view": {**view, "state": {"values": state}},
            }
        )

    # -- slash commands and events -----------------------------------------------------------

    def command(self, text: str, command: str = "/support", **signing: Any) -> Answer:
        body = urllib.parse.urlencode(
            {
                "token": "legacy",
                "team_id": TEAM,
                "channel_id": CHANNEL,
                "user_id": self.id,
                "user_name": self.name,
                "command": command,
                "text": text,
                "api_app_id": APP_ID,
                "response_url": "http://127.0.0.1:9/unused",
                "trigger_id": f"{next(_triggers)}.trigger",
            }
        ).encode()
        return signed_request(self.url, body, content_type="application/x-www-form-urlencoded", **signing)

    def event(self, event: dict[str, Any]) -> Answer:
        envelope = {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "type": "event_callback",
            "event_id": f"Ev{next(_triggers):08d}",
            "event_time": int(time.time()),
            "event": event,
        }
        return signed_request(self.url, json.dumps(envelope).encode(), content_type="application/json")

    def write_in_thread(self, channel: str, thread_ts: str, text: str) -> Answer:
        """Write in a thread, in the stand-in (as Slack would store it) and as an event to the bot."""
        posted = self.slack.post_as_user(channel, self.id, text, thread_ts=thread_ts)
        return self.event(
            {
                "type": "message",
                "channel": channel,
                "user": self.id,
                "text": text,
                "ts": posted["ts"],
                "thread_ts": thread_ts,
                "channel_type": "channel",
            }
        )

    def open_home(self) -> Answer:
        return self.event({"type": "app_home_opened", "user": self.id, "channel": "D0HOME", "tab": "home"})


def _find_element(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    for block in blocks:
        elements = block.get("elements") or ([block["element"]] if "element" in block else [])
        if "accessory" in block:
            elements = [*elements, block["accessory"]]
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id", "")}
    raise AssertionError(f"no element {action_id!r} in the blocks")


def _element_state(element: dict[str, Any], given: Any) -> dict[str, Any]:
    kind = element["type"]
    if kind == "multi_static_select":
        chosen = given if given is not None else [o["value"] for o in element.get("initial_options", [])]
        return {
            "type": kind,
            "selected_options": [{"text": {"type": "plain_text", "text": v}, "value": v} for v in chosen],
        }
    if kind == "static_select":
        return {"type": kind, "selected_option": {"value": given} if given else None}
    if kind == "users_select":
        return {"type": kind, "selected_user": given or element.get("initial_user")}
    return {"type": kind, "value": given}

"""Requests into the bot's real endpoint, shaped and signed the way Slack sends them.

A `SlackUser` clicks buttons on messages the stand-in holds, runs slash commands,
picks options in and submits the modals the bot opened, and writes in threads.
The test suite (tests/support/slack_requests.py) and the sandbox page both act
through it, so the page exercises exactly the path real Slack takes: an HTTP
POST to `/slack/events` signed with the signing secret.
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

from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_workspace import TEAM

APP_ID = "A0SUPPORTBOT"
# What a Socket Mode request that was never acknowledged reads as (bot/sandbox/socket_mode.py):
# Slack shows the user "operation_timeout"; 504 keeps it apart from the bot's refusals over HTTP.
NOT_ACKNOWLEDGED = 504
_events = itertools.count(1)

Json = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Json:
        """The answer as Slack reads it: Bolt sends a text-only ack as plain text."""
        if not self.body:
            return {}
        try:
            return dict(json.loads(self.body))
        except ValueError:
            return {"text": self.body.decode()}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def signed_request(
    url: str,
    body: bytes,
    *,
    content_type: str,
    secret: str,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> Answer:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(secret, ts, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read())


class SlackUser:
    def __init__(
        self,
        bot_url: str,
        slack: SlackStandIn,
        user_id: str,
        name: str | None = None,
        *,
        secret: str,
        channel: str,
    ) -> None:
        self.url = f"{bot_url}/slack/events"
        self.slack = slack
        self.id = user_id
        self.name = name or user_id.lower()
        self.secret = secret
        self.channel = channel

    def _user(self) -> Json:
        return {"id": self.id, "username": self.name, "name": self.name, "team_id": TEAM}

    def _post(self, body: bytes, content_type: str, **signing: Any) -> Answer:
        signing.setdefault("secret", self.secret)
        return signed_request(self.url, body, content_type=content_type, **signing)

    def _interaction(self, payload: Json, **signing: Any) -> Answer:
        base = {"team": {"id": TEAM}, "user": self._user(), "api_app_id": APP_ID, "token": "legacy"}
        return self.send_interaction({**base, **payload}, **signing)

    # How each kind of request reaches the bot: over HTTP here; a Socket Mode user
    # (bot/sandbox/socket_mode.py) sends the same payloads in envelopes instead.

    def send_interaction(self, payload: Json, **signing: Any) -> Answer:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return self._post(body, "application/x-www-form-urlencoded", **signing)

    def send_command(self, fields: dict[str, str], **signing: Any) -> Answer:
        return self._post(
            urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded", **signing
        )

    def send_event(self, envelope: Json) -> Answer:
        return self._post(json.dumps(envelope).encode(), "application/json")

    def _trigger(self) -> str:
        # Issued by the stand-in, so the modal a views.open brings up is shown to this user.
        return self.slack.issue_trigger(self.id)

    # -- messages ----------------------------------------------------------------------

    def click(
        self,
        message: Json,
        action_id: str,
        *,
        option: str | None = None,
        value: str | list[str] | None = None,
        block_id: str | None = None,
        **signing: Any,
    ) -> Answer:
        """Press a button, or pick an option of an overflow menu or select, on a message.

        `option` picks an overflow option by its verb (`reassign` for `reassign:12`);
        `value` picks an option by its exact value; `block_id` says which block when
        several carry the same action_id."""
        element = find_element(message.get("blocks") or [], action_id, block_id)
        if option is not None:
            value = next(o["value"] for o in _options(element) if o["value"].startswith(f"{option}:"))
        channel = message.get("channel", self.channel)
        container: Json = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": bool(message.get("is_ephemeral")),
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        return self._interaction(
            {
                "type": "block_actions",
                "trigger_id": self._trigger(),
                "container": container,
                "channel": {"id": channel, "name": self.slack.channel_name(channel)},
                "message": {k: v for k, v in message.items() if k not in ("replies", "channel")},
                "response_url": self.slack.issue_response_url(self.id, channel),
                "actions": [action_of(element, value)],
            },
            **signing,
        )

    # -- modals and App Home -----------------------------------------------------------------

    def pick(
        self,
        view_id: str,
        action_id: str,
        value: str | list[str] | None = None,
        *,
        block_id: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> Answer:
        """Press a button or choose an option inside a modal or App Home (fires block_actions).

        `values` is what the inputs hold at that moment (block_id → value), which Slack
        sends along as the view's state."""
        view = self.slack.views[view_id]
        element = find_element(view["blocks"], action_id, block_id)
        given = dict(values or {})
        if element["type"] != "button":
            # The state Slack sends holds the element just used, with its new value.
            given[element["block_id"]] = value
        payload: Json = {
            "type": "block_actions",
            "trigger_id": self._trigger(),
            "container": {"type": "view", "view_id": view_id},
            "view": {**view, "state": {"values": view_state(view, given, only_given=True)}},
            "actions": [action_of(element, value)],
        }
        return self._interaction(payload)

    def submit(self, view_id: str, values: dict[str, Any] | None = None) -> Answer:
        """Submit a modal. `values` maps block_id → value (str, list of str, or a user id for
        users_select); inputs not given are submitted with their initial value, as Slack does."""
        view = self.slack.views[view_id]
        answer = self._interaction(
            {
                "type": "view_submission",
                "trigger_id": self._trigger(),
                "view": {**view, "state": {"values": view_state(view, values or {})}},
            }
        )
        if answer.status == 200:
            self.slack.check_submission_answer(view_id, answer.json())
        return answer

    def close(self, view_id: str) -> Answer | None:
        """Cancel a modal: Slack tells the app only when the view asked for it (notify_on_close)."""
        view = self.slack.views[view_id]
        if not view.get("notify_on_close"):
            return None
        return self._interaction({"type": "view_closed", "view": view, "is_cleared": False})

    # -- slash commands and events -----------------------------------------------------------

    def command(
        self, text: str, command: str = "/support", *, channel: str | None = None, **signing: Any
    ) -> Answer:
        channel = channel or self.channel
        return self.send_command(
            {
                "token": "legacy",
                "team_id": TEAM,
                "channel_id": channel,
                "channel_name": self.slack.channel_name(channel),
                "user_id": self.id,
                "user_name": self.name,
                "command": command,
                "text": text,
                "api_app_id": APP_ID,
                "response_url": self.slack.issue_response_url(self.id, channel),
                "trigger_id": self._trigger(),
            },
            **signing,
        )

    def event(self, event: Json) -> Answer:
        envelope = {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "type": "event_callback",
            "event_id": f"Ev{next(_events):08d}",
            "event_time": int(time.time()),
            "event": event,
        }
        return self.send_event(envelope)

    def write(self, channel: str, text: str, thread_ts: str | None = None) -> Answer:
        """Write a message (in a thread when `thread_ts`), in the stand-in as Slack would store
        it and as the event Slack sends the bot."""
        posted = self.slack.post_as_user(channel, self.id, text, thread_ts=thread_ts)
        event: Json = {
            "type": "message",
            "channel": channel,
            "user": self.id,
            "text": text,
            "ts": posted["ts"],
            "channel_type": "im" if channel.startswith("D") else "channel",
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.event(event)

    def write_in_thread(self, channel: str, thread_ts: str, text: str) -> Answer:
        return self.write(channel, text, thread_ts=thread_ts)

    def open_home(self) -> Answer:
        return self.event({"type": "app_home_opened", "user": self.id, "channel": "D0HOME", "tab": "home"})


# -- Block Kit: finding elements and stating their values the way Slack does ------------------


def _elements_of(block: Json) -> list[Json]:
    elements = list(block.get("elements") or [])
    if isinstance(block.get("element"), dict):
        elements.append(block["element"])
    if isinstance(block.get("accessory"), dict):
        elements.append(block["accessory"])
    return [e for e in elements if isinstance(e, dict)]


def find_element(blocks: list[Json], action_id: str, block_id: str | None = None) -> Json:
    """The interactive element with `action_id` (in block `block_id` if given), with its block_id."""
    for index, block in enumerate(blocks):
        own_id = str(block.get("block_id") or f"block{index}")
        if block_id is not None and own_id != block_id:
            continue
        for element in _elements_of(block):
            if element.get("action_id") == action_id:
                return {**element, "block_id": own_id}
    raise LookupError(f"no element {action_id!r} in the blocks")


def _options(element: Json) -> list[Json]:
    return list(element.get("options") or []) + [
        o for group in element.get("option_groups") or [] for o in group.get("options") or []
    ]


def _option(element: Json, value: str) -> Json:
    for option in _options(element):
        if option.get("value") == value:
            return {k: option[k] for k in ("text", "value") if k in option}
    # Slack never sends an option the element lacks; tests sometimes do, to see the bot cope.
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def action_of(element: Json, value: str | list[str] | None) -> Json:
    """The `actions[0]` entry Slack sends when someone uses `element`."""
    kind = element["type"]
    action: Json = {
        "action_id": element["action_id"],
        "block_id": element["block_id"],
        "type": kind,
        "action_ts": f"{time.time():.6f}",
    }
    if kind == "button":
        if "value" in element:
            action["value"] = element["value"]
        action["text"] = element.get("text")
    else:
        action.update(_selection(element, value))
    return action


def _selection(element: Json, given: Any) -> Json:
    """What an element holds, in the field names Slack uses for its kind."""
    kind = element["type"]
    if kind in ("static_select", "overflow", "radio_buttons", "external_select"):
        return {"selected_option": _option(element, str(given)) if given else None}
    if kind in ("multi_static_select", "checkboxes", "multi_external_select"):
        chosen = [given] if isinstance(given, str) else list(given or [])
        return {"selected_options": [_option(element, str(v)) for v in chosen]}
    if kind == "users_select":
        return {"selected_user": given or None}
    if kind == "multi_users_select":
        return {"selected_users": [given] if isinstance(given, str) else list(given or [])}
    if kind == "conversations_select":
        return {"selected_conversation": given or None}
    if kind == "channels_select":
        return {"selected_channel": given or None}
    if kind == "datepicker":
        return {"selected_date": given or None}
    if kind == "timepicker":
        return {"selected_time": given or None}
    if kind == "file_input":
        # Slack submits the picked files as file objects (id, name, url_private, …).
        return {"files": list(given or [])}
    return {"value": given}


def initial_value(element: Json) -> Any:
    """What an input holds before anyone touches it."""
    kind = element["type"]
    if kind in ("static_select", "radio_buttons", "external_select"):
        return (element.get("initial_option") or {}).get("value")
    if kind in ("multi_static_select", "checkboxes", "multi_external_select"):
        return [o["value"] for o in element.get("initial_options") or []]
    if kind == "users_select":
        return element.get("initial_user")
    if kind == "multi_users_select":
        return list(element.get("initial_users") or [])
    if kind in ("conversations_select", "channels_select"):
        return element.get("initial_conversation") or element.get("initial_channel")
    if kind == "datepicker":
        return element.get("initial_date")
    if kind == "timepicker":
        return element.get("initial_time")
    return element.get("initial_value")


# Elements that hold a value (Slack's "stateful" elements); buttons and overflow menus don't.
_STATELESS = ("button", "overflow")


def view_state(view: Json, values: dict[str, Any], *, only_given: bool = False) -> dict[str, Json]:
    """A view's `state.values`: each stateful element, by block_id then action_id, holding
    `values[block_id]` or, when not given, its initial value (as Slack submits untouched
    inputs). As in Slack, this covers the selects of actions blocks and section accessories
    too, not only input blocks, in the order of the blocks."""
    state: dict[str, Json] = {}
    for index, block in enumerate(view.get("blocks") or []):
        if block.get("type") == "input" and isinstance(block.get("element"), dict):
            elements = [block["element"]]
        elif block.get("type") in ("actions", "section"):
            elements = [e for e in _elements_of(block) if e.get("type") not in _STATELESS]
        else:
            continue
        block_id = str(block.get("block_id") or f"block{index}")
        if not elements or (only_given and block_id not in values):
            continue
        for element in elements:
            given = values[block_id] if block_id in values else initial_value(element)
            if given is None and block.get("type") != "input":
                continue  # an untouched select outside an input block holds nothing yet
            entry = {"type": element["type"], **_selection(element, given)}
            state.setdefault(block_id, {})[element["action_id"]] = entry
    return state

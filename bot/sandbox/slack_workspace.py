"""The workspace the Slack stand-in keeps in memory (channels, threads, metadata, users,
DMs, views, user groups, files), and the checks every method shares.

The Web API methods themselves are functions over a `Workspace`, grouped by family
(`slack_chat`, `slack_conversations`, `slack_people`, `slack_views`, `slack_files`);
`slack_api.SlackStandIn` serves them over HTTP. Callers hold the workspace's lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.block_kit import message_problems, view_problems

BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
TEAM = "T0TEAM"

Json = dict[str, Any]


class SlackError(Exception):
    """A method's `ok: false` answer, with Slack's error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class Call:
    method: str
    args: Json
    at: float
    status: int


@dataclass
class Posted:
    channel: str
    ts: str
    user: str
    text: str = ""
    blocks: list[Any] = field(default_factory=list)
    metadata: Json | None = None
    thread_ts: str | None = None
    edited: bool = False
    deleted: bool = False
    # Files shared with this message (files.completeUploadExternal with a channel).
    files: list[Json] = field(default_factory=list)

    def as_api(self, with_metadata: bool) -> Json:
        out: Json = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.user == BOT_USER:
            out["bot_id"] = BOT_ID
        if self.files:
            out["files"] = [{k: v for k, v in f.items() if k != "content"} for f in self.files]
            out["upload"] = True
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        if self.edited:
            out["edited"] = {"user": BOT_USER}
        return out


TRIGGER_SECONDS = 3.0


class Workspace:
    """What Slack would hold for the bot's workspace; the lock guards all of it."""

    def __init__(self, channels: tuple[str, ...]) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._last_ts = 0
        self.ids = itertools.count(1)
        # Where the stand-in listens ("http://127.0.0.1:<port>"), for the URLs it hands out.
        self.root_url = ""
        # The wss:// URL `apps.connections.open` hands out, when a Socket Mode stand-in is attached.
        self.socket_url: Callable[[], str] | None = None
        self.posts: dict[str, list[Posted]] = {c: [] for c in channels}
        self.members: dict[str, set[str]] = {c: {BOT_USER} for c in channels}
        self.topics: dict[str, str] = {}
        self.ephemeral: list[Json] = []
        self.users: dict[str, Json] = {}
        # Per user: a Do Not Disturb schedule (start, end) and a manual snooze (snooze_until).
        self.dnd: dict[str, dict[str, float]] = {}
        self.dm_channels: dict[str, str] = {}
        self.views: dict[str, Json] = {}
        self.home: dict[str, Json] = {}
        self.usergroups: dict[str, Json] = {}
        # Workspace settings → Permissions → User Groups: a bot token may change a group's
        # members only when "everyone" may (Slack answers permission_denied otherwise), and
        # user groups exist on paid plans only (plan_upgrade_required on the free plan).
        self.everyone_manages_usergroups = True
        self.paid_plan = True
        self.files: list[Json] = []
        self.uploads: dict[str, Json] = {}
        self.channel_names: dict[str, str] = {}
        # Who sees which modal: a trigger_id names the user who acted, as in Slack, and the
        # views opened or pushed with it stack up in front of that user until closed.
        self.trigger_users: dict[str, str] = {}
        # When each trigger_id was handed out: Slack accepts one for three seconds only.
        self.trigger_issued: dict[str, float] = {}
        self.modal_stacks: dict[str, list[str]] = {}
        self.modal_errors: dict[str, dict[str, str]] = {}
        # What was refused as `invalid_blocks`, and why: real Slack refuses such a post
        # forever, so every end-to-end test doubles as a Block Kit check.
        self.invalid: list[tuple[str, list[str]]] = []

    def next_ts(self) -> str:
        # Like Slack: the posting time in microseconds, unique and increasing per workspace.
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def channel_of(self, args: Json) -> str:
        channel = str(args.get("channel") or "")
        if channel.startswith(("U", "W")):
            return self.dm_channel(channel)
        if channel not in self.posts:
            raise SlackError("channel_not_found")
        return channel

    def dm_channel(self, user: str) -> str:
        if user not in self.dm_channels:
            channel = f"D{next(self.ids):07d}"
            self.dm_channels[user] = channel
            self.posts[channel] = []
            self.members[channel] = {BOT_USER, user}
        return self.dm_channels[user]

    def store(
        self, channel: str, user: str, text: str, blocks: Any, metadata: Any, thread_ts: str | None
    ) -> Posted:
        if thread_ts and not any(p.ts == thread_ts for p in self.posts[channel]):
            raise SlackError("thread_not_found")
        post = Posted(channel, self.next_ts(), user, text or "", blocks or [], metadata or None, thread_ts)
        self.posts[channel].append(post)
        return post

    def check_message(self, method: str, text: Any, blocks: Any, metadata: Any) -> None:
        problems = message_problems(text, blocks, metadata)
        if problems:
            self.invalid.append((method, problems))
            raise SlackError("invalid_blocks")

    def check_view(self, method: str, view: Any) -> None:
        problems = view_problems(view)
        if problems:
            self.invalid.append((method, problems))
            # views.* answer a broken view (a text box over 3,000 characters, say) with
            # invalid_arguments; chat.* say invalid_blocks.
            raise SlackError("invalid_arguments")

    def find(self, channel: str, ts: str) -> Posted:
        for post in self.posts.get(channel, []):
            if post.ts == ts and not post.deleted:
                return post
        raise SlackError("message_not_found")

    def replies(self, channel: str, ts: str) -> list[Posted]:
        return [p for p in self.posts.get(channel, []) if p.thread_ts == ts and p.ts != ts and not p.deleted]

    def store_view(self, view: Any, view_id: str | None = None, **extra: Any) -> Json:
        if not isinstance(view, dict):
            raise SlackError("invalid_arguments")
        self.check_view("views", view)
        view_id = view_id or f"V{next(self.ids):07d}"
        stored = {**view, **extra, "id": view_id, "hash": f"h{next(self.ids)}"}
        self.views[view_id] = stored
        return stored


def page(items: list[Json], args: Json, key: str) -> Json:
    """One page of a list method's answer, with the cursor Slack's clients follow."""
    limit = max(1, min(1000, int(args.get("limit") or 100)))
    start = int(args.get("cursor") or 0)
    page = items[start : start + limit]
    cursor = str(start + limit) if start + limit < len(items) else ""
    return {
        "ok": True,
        key: page,
        "has_more": bool(cursor),
        "response_metadata": {"next_cursor": cursor},
    }


# A Web API method: what it does to the workspace and what it answers.
Method = Callable[[Workspace, Json], Json]

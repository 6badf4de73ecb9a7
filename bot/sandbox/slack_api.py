"""A local stand-in for Slack's Web API, good enough for the real `slack_sdk` client.

It keeps a small workspace in memory (channels, threads, metadata, users, DMs,
views, user groups), records every call with its arguments and HTTP status, and
can misbehave on demand: 429 with Retry-After, 5xx, `ok: false` errors, or a
whole outage. The test suite and the local sandbox both drive it.
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from bot.sandbox.block_kit import message_problems, view_problems

BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
TEAM = "T0TEAM"

Json = dict[str, Any]


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


@dataclass
class Fault:
    method: str | None
    status: int
    times: int
    retry_after: float | None = None
    error: str | None = None
    # The call takes effect, then the answer is an error: a gateway timing out after
    # Slack stored the post. A retry must find that post, not post again.
    after_effect: bool = False


def _coerce(value: Any) -> Any:
    """Form bodies carry JSON-valued fields (blocks, metadata, view) as strings."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class SlackStandIn:
    def __init__(self, channels: tuple[str, ...] = ("C0SUPPORT",), port: int = 0) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._last_ts = 0
        self._ids = itertools.count(1)
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self.upload_seconds = 0.0  # how long the upload URL takes to answer (step 2 of a file upload)
        self._down = False
        self.posts: dict[str, list[Posted]] = {c: [] for c in channels}
        self.members: dict[str, set[str]] = {c: {BOT_USER} for c in channels}
        self.topics: dict[str, str] = {}
        self.ephemeral: list[Json] = []
        self.users: dict[str, Json] = {}
        self.dnd: dict[str, bool] = {}
        self.dm_channels: dict[str, str] = {}
        self.views: dict[str, Json] = {}
        self.home: dict[str, Json] = {}
        self.usergroups: dict[str, Json] = {}
        self.files: list[Json] = []
        self._uploads: dict[str, Json] = {}
        self.channel_names: dict[str, str] = {}
        # Who sees which modal: a trigger_id names the user who acted, as in Slack, and the
        # views opened or pushed with it stack up in front of that user until closed.
        self._trigger_users: dict[str, str] = {}
        self.modal_stacks: dict[str, list[str]] = {}
        self.modal_errors: dict[str, dict[str, str]] = {}
        self._response_urls: dict[str, tuple[str, str]] = {}
        # What was refused as `invalid_blocks`, and why: real Slack refuses such a post
        # forever, so every end-to-end test doubles as a Block Kit check.
        self.invalid: list[tuple[str, list[str]]] = []
        self.add_user(BOT_USER, "supportbot", "supportbot", is_bot=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> SlackStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- workspace set-up -----------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        *,
        tz: str = "Europe/Rome",
        is_bot: bool = False,
        email: str | None = None,
        channels: tuple[str, ...] = (),
    ) -> None:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        offset = datetime.now(ZoneInfo(tz)).utcoffset()
        with self._lock:
            self.users[user_id] = {
                "id": user_id,
                "team_id": TEAM,
                "name": name,
                "real_name": real_name or name,
                "tz": tz,
                "tz_offset": int(offset.total_seconds()) if offset else 0,
                "is_bot": is_bot,
                "deleted": False,
                "profile": {
                    "display_name": name,
                    "real_name": real_name or name,
                    "email": email or f"{name}@example.com",
                },
            }
            for channel in channels:
                self.members.setdefault(channel, set()).add(user_id)

    def name_channel(self, channel: str, name: str) -> None:
        with self._lock:
            self.channel_names[channel] = name
            self.posts.setdefault(channel, [])
            self.members.setdefault(channel, {BOT_USER})

    def channel_name(self, channel: str) -> str:
        with self._lock:
            return self.channel_names.get(channel, channel.lower())

    def set_dnd(self, user: str, snoozed: bool) -> None:
        with self._lock:
            self.dnd[user] = snoozed

    def post_as_user(
        self, channel: str, user: str, text: str, thread_ts: str | None = None, metadata: Json | None = None
    ) -> Json:
        """A message written in Slack by someone (or by an earlier run of the bot)."""
        with self._lock:
            post = self._store(channel, user, text, [], metadata, thread_ts)
            return post.as_api(True)

    # -- what Slack hands out with each interaction ------------------------------------------

    def issue_trigger(self, user: str) -> str:
        """A trigger_id for an interaction by `user`: a modal opened with it is theirs."""
        with self._lock:
            trigger = f"{next(self._ids)}.{int(time.time())}.sandbox"
            self._trigger_users[trigger] = user
            return trigger

    def issue_response_url(self, user: str, channel: str) -> str:
        """A response_url for an interaction by `user` in `channel`; what the app posts there
        is shown to that user (or to the channel, with response_type in_channel)."""
        with self._lock:
            token = f"R{next(self._ids):07d}"
            self._response_urls[token] = (user, channel)
            return f"http://127.0.0.1:{self.port}/response/{token}"

    def add_ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[Any] | None = None,
        thread_ts: str | None = None,
    ) -> Json:
        """An ephemeral message, e.g. Slack showing a slash command's immediate answer."""
        with self._changed:
            entry = {
                "channel": channel,
                "user": user,
                "text": text or "",
                "blocks": blocks or [],
                "thread_ts": thread_ts,
                "ts": self._next_ts(),
            }
            self.ephemeral.append(entry)
            self._changed.notify_all()
            return entry

    def _respond(self, token: str, body: Json) -> Json:
        with self._changed:
            target = self._response_urls.get(token)
            if target is None:
                return {"ok": False, "error": "expired_url"}
            user, channel = target
            text, blocks = str(body.get("text") or ""), _coerce(body.get("blocks")) or []
            try:
                self._check_message("response_url", body.get("text"), blocks, None)
            except _SlackError as exc:
                return {"ok": False, "error": exc.error}
            if body.get("response_type") == "in_channel":
                try:
                    self._store(channel, BOT_USER, text, blocks, None, body.get("thread_ts"))
                except _SlackError as exc:
                    return {"ok": False, "error": exc.error}
            elif not body.get("delete_original"):
                self.add_ephemeral(channel, user, text, blocks, body.get("thread_ts"))
            self._changed.notify_all()
            return {"ok": True}

    # -- modals as a user sees them ---------------------------------------------------------

    def open_modal(self, user: str) -> Json | None:
        """The modal in front of `user` (the top of their stack), with any field errors."""
        with self._lock:
            stack = self.modal_stacks.get(user) or []
            if not stack:
                return None
            view = dict(self.views[stack[-1]])
            view["errors"] = dict(self.modal_errors.get(view["id"], {}))
            view["stack_depth"] = len(stack)
            return view

    def close_modal(self, user: str, *, clear: bool = False) -> None:
        with self._changed:
            stack = self.modal_stacks.get(user) or []
            closed = stack[:] if clear else stack[-1:]
            del stack[len(stack) - len(closed) :]
            for view_id in closed:
                self.modal_errors.pop(view_id, None)
            self._changed.notify_all()

    def answer_submission(self, user: str, view_id: str, answer: Json) -> None:
        """Do what Slack does with the app's answer to a view_submission: show field errors,
        replace or push a view, clear the stack, or (an empty answer) close the modal."""
        with self._changed:
            action = answer.get("response_action")
            stack = self.modal_stacks.setdefault(user, [])
            if action == "errors":
                self.modal_errors[view_id] = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
            elif action == "update" and isinstance(answer.get("view"), dict):
                self.modal_errors.pop(view_id, None)
                self._view(answer["view"], view_id)
            elif action == "push" and isinstance(answer.get("view"), dict):
                stack.append(self._view(answer["view"])["id"])
            elif action == "clear":
                self.close_modal(user, clear=True)
            elif view_id in stack:
                self.modal_errors.pop(view_id, None)
                stack.remove(view_id)
            self._changed.notify_all()

    # -- faults -----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str | None = None,
        *,
        status: int = 429,
        retry_after: float = 1,
        times: int = 1,
        after_effect: bool = False,
    ) -> None:
        with self._lock:
            retry = retry_after if status == 429 else None
            self._faults.append(Fault(method, status, times, retry, after_effect=after_effect))

    def clear_faults(self) -> None:
        """Forget faults not yet used up (a sustained one was queued with a large `times`)."""
        with self._lock:
            self._faults.clear()

    def error_next(self, method: str | None, error: str = "channel_not_found", *, times: int = 1) -> None:
        with self._lock:
            self._faults.append(Fault(method, 200, times, error=error))

    def set_down(self, down: bool) -> None:
        with self._lock:
            self._down = down

    # -- assertions ---------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(
        self, what: str | Callable[[Call], bool], count: int = 1, timeout: float = 10.0
    ) -> list[Call]:
        def matches() -> list[Call]:
            if isinstance(what, str):
                return [c for c in self._calls if c.method == what and c.status == 200]
            return [c for c in self._calls if what(c)]

        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := matches()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count} calls matching {what!r} after {timeout}s")
                self._changed.wait(left)
            return found

    def messages(self, channel: str) -> list[Json]:
        """Top-level messages, oldest first, each with its thread replies."""
        with self._lock:
            out = []
            for post in self.posts.get(channel, []):
                if post.deleted or (post.thread_ts and post.thread_ts != post.ts):
                    continue
                item = post.as_api(True)
                item["replies"] = [p.as_api(True) for p in self._replies(channel, post.ts)]
                out.append(item)
            return out

    def thread(self, channel: str, ts: str) -> list[Json]:
        """The parent then its replies, oldest first."""
        with self._lock:
            parent = next((p for p in self.posts.get(channel, []) if p.ts == ts), None)
            if parent is None:
                return []
            return [parent.as_api(True)] + [p.as_api(True) for p in self._replies(channel, ts)]

    def find_message(self, channel: str, ts: str) -> Json | None:
        """One message (top-level or in a thread) as the API shows it, with its channel."""
        with self._lock:
            for post in self.posts.get(channel, []):
                if post.ts == ts and not post.deleted:
                    return {**post.as_api(True), "channel": channel}
            return None

    def ephemerals(self, user: str | None = None) -> list[Json]:
        with self._lock:
            return [e for e in self.ephemeral if user is None or e["user"] == user]

    def dms(self, user: str) -> list[Json]:
        with self._lock:
            channel = self.dm_channels.get(user)
            return [p.as_api(True) for p in self.posts.get(channel, [])] if channel else []

    # -- the HTTP side ----------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_PUT(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                if path.startswith("/upload/"):
                    status, answer = standin._upload(path.rsplit("/", 1)[1], body)
                    data = answer.encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if path.startswith("/response/"):
                    try:
                        sent = json.loads(body or b"{}")
                    except ValueError:
                        sent = {}
                    answer = standin._respond(path.rsplit("/", 1)[1], sent if isinstance(sent, dict) else {})
                    self._answer(200 if answer["ok"] else 404, answer, {})
                    return
                method = path.removeprefix("/api/")
                args: Json = dict(urllib.parse.parse_qsl(query))
                ctype = self.headers.get("Content-Type") or ""
                if body and "json" in ctype:
                    args.update(json.loads(body))
                elif body:
                    args.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
                args = {k: _coerce(v) for k, v in args.items()}
                status, payload, headers = standin._dispatch(method, args)
                self._answer(status, payload, headers)

            def _answer(self, status: int, payload: Json, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _dispatch(self, method: str, args: Json) -> tuple[int, Json, dict[str, str]]:
        with self._changed:
            status, payload, headers = self._fault_for(method)
            if status == 200 and not payload:
                handler = getattr(self, "_m_" + method.replace(".", "_"), None)
                if handler is None:
                    payload = {"ok": False, "error": "unknown_method"}
                else:
                    try:
                        payload = handler(args)
                    except _SlackError as exc:
                        payload = {"ok": False, "error": exc.error}
                if payload.get("ok"):
                    status, payload, headers = self._fault_after_effect(method, status, payload, headers)
            self._calls.append(Call(method, args, time.monotonic(), status))
            self._changed.notify_all()
            return status, payload, headers

    def _fault_for(self, method: str) -> tuple[int, Json, dict[str, str]]:
        if self._down:
            return 503, {"ok": False, "error": "service_unavailable"}, {}
        for fault in self._faults:
            if fault.times > 0 and fault.method in (None, method):
                if fault.after_effect:
                    break  # its turn: the call runs, then `_fault_after_effect` answers
                fault.times -= 1
                if fault.error:
                    return 200, {"ok": False, "error": fault.error}, {}
                if fault.status == 429:
                    return (
                        429,
                        {"ok": False, "error": "ratelimited"},
                        {"Retry-After": f"{fault.retry_after:g}"},
                    )
                return fault.status, {"ok": False, "error": "internal_error"}, {}
        return 200, {}, {}

    def _fault_after_effect(
        self, method: str, status: int, payload: Json, headers: dict[str, str]
    ) -> tuple[int, Json, dict[str, str]]:
        for fault in self._faults:
            if fault.times > 0 and fault.after_effect and fault.method in (None, method):
                fault.times -= 1
                return fault.status, {"ok": False, "error": "internal_error"}, {}
        return status, payload, headers

    # -- state helpers ------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        # Like Slack: the posting time in microseconds, unique and increasing per workspace.
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, args: Json) -> str:
        channel = str(args.get("channel") or "")
        if channel.startswith(("U", "W")):
            return self._dm(channel)
        if channel not in self.posts:
            raise _SlackError("channel_not_found")
        return channel

    def _dm(self, user: str) -> str:
        if user not in self.dm_channels:
            channel = f"D{next(self._ids):07d}"
            self.dm_channels[user] = channel
            self.posts[channel] = []
            self.members[channel] = {BOT_USER, user}
        return self.dm_channels[user]

    def _store(
        self, channel: str, user: str, text: str, blocks: Any, metadata: Any, thread_ts: str | None
    ) -> Posted:
        if thread_ts and not any(p.ts == thread_ts for p in self.posts[channel]):
            raise _SlackError("thread_not_found")
        post = Posted(channel, self._next_ts(), user, text or "", blocks or [], metadata or None, thread_ts)
        self.posts[channel].append(post)
        return post

    def _check_message(self, method: str, text: Any, blocks: Any, metadata: Any) -> None:
        problems = message_problems(text, blocks, metadata)
        if problems:
            self.invalid.append((method, problems))
            raise _SlackError("invalid_blocks")

    def _check_view(self, method: str, view: Any) -> None:
        problems = view_problems(view)
        if problems:
            self.invalid.append((method, problems))
            raise _SlackError("invalid_blocks")

    def _find(self, channel: str, ts: str) -> Posted:
        for post in self.posts.get(channel, []):
            if post.ts == ts and not post.deleted:
                return post
        raise _SlackError("message_not_found")

    def _replies(self, channel: str, ts: str) -> list[Posted]:
        return [p for p in self.posts.get(channel, []) if p.thread_ts == ts and p.ts != ts and not p.deleted]

    @staticmethod
    def _page(items: list[Json], args: Json, key: str) -> Json:
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

    # -- methods --------------------------------------------------------------------------------------

    def _m_auth_test(self, args: Json) -> Json:
        return {
            "ok": True,
            "url": "https://sandbox.slack.test/",
            "team": "Sandbox",
            "team_id": TEAM,
            "user": "supportbot",
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    def _m_chat_postMessage(self, args: Json) -> Json:
        channel = self._channel(args)
        if BOT_USER not in self.members.get(channel, set()) and channel.startswith("C"):
            raise _SlackError("not_in_channel")
        text, blocks = args.get("text"), args.get("blocks")
        if not text and not blocks:
            raise _SlackError("no_text")
        self._check_message("chat.postMessage", text, blocks, args.get("metadata"))
        post = self._store(
            channel, BOT_USER, str(text or ""), blocks, args.get("metadata"), args.get("thread_ts")
        )
        return {"ok": True, "channel": channel, "ts": post.ts, "message": post.as_api(True)}

    def _m_chat_update(self, args: Json) -> Json:
        channel = self._channel(args)
        post = self._find(channel, str(args.get("ts")))
        self._check_message("chat.update", args.get("text"), args.get("blocks"), args.get("metadata"))
        if "text" in args:
            post.text = str(args["text"])
        if "blocks" in args:
            post.blocks = args["blocks"] or []
        if args.get("metadata"):
            post.metadata = args["metadata"]
        post.edited = True
        return {"ok": True, "channel": channel, "ts": post.ts, "text": post.text}

    def _m_chat_delete(self, args: Json) -> Json:
        channel = self._channel(args)
        self._find(channel, str(args.get("ts"))).deleted = True
        return {"ok": True, "channel": channel, "ts": args.get("ts")}

    def _m_chat_postEphemeral(self, args: Json) -> Json:
        channel = self._channel(args)
        self._check_message("chat.postEphemeral", args.get("text"), args.get("blocks"), None)
        ts = self._next_ts()
        self.ephemeral.append(
            {
                "channel": channel,
                "user": args.get("user"),
                "text": args.get("text", ""),
                "blocks": args.get("blocks") or [],
                "thread_ts": args.get("thread_ts"),
                "ts": ts,
            }
        )
        return {"ok": True, "message_ts": ts}

    def _m_chat_getPermalink(self, args: Json) -> Json:
        channel = self._channel(args)
        ts = str(args.get("message_ts"))
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://sandbox.slack.test/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _m_conversations_history(self, args: Json) -> Json:
        channel = self._channel(args)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        items = [
            p.as_api(with_metadata)
            for p in reversed(self.posts[channel])
            if not p.deleted and (not p.thread_ts or p.thread_ts == p.ts) and oldest <= float(p.ts) <= latest
        ]
        return self._page(items, args, "messages")

    def _m_conversations_replies(self, args: Json) -> Json:
        channel = self._channel(args)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        parent = self._find(channel, str(args.get("ts")))
        items = [parent.as_api(with_metadata)] + [
            p.as_api(with_metadata) for p in self._replies(channel, parent.ts)
        ]
        return self._page(items, args, "messages")

    def _m_conversations_join(self, args: Json) -> Json:
        channel = self._channel(args)
        self.members.setdefault(channel, set()).add(BOT_USER)
        return {"ok": True, "channel": {"id": channel}}

    def _m_conversations_info(self, args: Json) -> Json:
        channel = self._channel(args)
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": self.channel_names.get(channel, channel.lower()),
                "is_member": BOT_USER in self.members.get(channel, set()),
                "topic": {"value": self.topics.get(channel, "")},
            },
        }

    def _m_conversations_members(self, args: Json) -> Json:
        channel = self._channel(args)
        return self._page(sorted(self.members.get(channel, set())), args, "members")

    def _m_conversations_open(self, args: Json) -> Json:
        users = str(args.get("users") or "").split(",")
        if not users or not users[0]:
            raise _SlackError("users_list_not_supplied")
        return {"ok": True, "channel": {"id": self._dm(users[0])}}

    def _m_conversations_setTopic(self, args: Json) -> Json:
        channel = self._channel(args)
        self.topics[channel] = str(args.get("topic", ""))
        return {"ok": True, "channel": {"id": channel, "topic": {"value": self.topics[channel]}}}

    def _m_users_info(self, args: Json) -> Json:
        user = self.users.get(str(args.get("user")))
        if user is None:
            raise _SlackError("user_not_found")
        return {"ok": True, "user": user}

    def _m_users_list(self, args: Json) -> Json:
        return self._page(list(self.users.values()), args, "members")

    def _m_dnd_info(self, args: Json) -> Json:
        snoozed = self.dnd.get(str(args.get("user")), False)
        return {"ok": True, "dnd_enabled": snoozed, "snooze_enabled": snoozed}

    def _m_reactions_add(self, args: Json) -> Json:
        self._find(self._channel(args), str(args.get("timestamp")))
        return {"ok": True}

    def _view(self, view: Any, view_id: str | None = None, **extra: Any) -> Json:
        if not isinstance(view, dict):
            raise _SlackError("invalid_arguments")
        self._check_view("views", view)
        view_id = view_id or f"V{next(self._ids):07d}"
        stored = {**view, **extra, "id": view_id, "hash": f"h{next(self._ids)}"}
        self.views[view_id] = stored
        return stored

    def _m_views_open(self, args: Json) -> Json:
        if not args.get("trigger_id"):
            raise _SlackError("invalid_trigger_id")
        view = self._view(args.get("view"))
        user = self._trigger_users.get(str(args["trigger_id"]))
        if user is not None:
            self.modal_stacks[user] = [view["id"]]
        return {"ok": True, "view": view}

    def _m_views_push(self, args: Json) -> Json:
        if not args.get("trigger_id"):
            raise _SlackError("invalid_trigger_id")
        view = self._view(args.get("view"))
        user = self._trigger_users.get(str(args["trigger_id"]))
        if user is not None:
            # Slack allows three views on the stack.
            if len(self.modal_stacks.get(user) or []) >= 3:
                raise _SlackError("push_limit_reached")
            self.modal_stacks.setdefault(user, []).append(view["id"])
        return {"ok": True, "view": view}

    def _m_views_update(self, args: Json) -> Json:
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (v["id"] for v in self.views.values() if v.get("external_id") == args["external_id"]), None
            )
        if not view_id or view_id not in self.views:
            raise _SlackError("not_found")
        if args.get("hash") and args["hash"] != self.views[view_id]["hash"]:
            raise _SlackError("hash_conflict")
        view = self._view(args.get("view"), str(view_id))
        for user, home in self.home.items():
            if home.get("id") == view_id:
                self.home[user] = view
        return {"ok": True, "view": view}

    def _m_views_publish(self, args: Json) -> Json:
        user = str(args.get("user_id"))
        view = self._view(args.get("view"))
        self.home[user] = view
        return {"ok": True, "view": view}

    def _m_usergroups_list(self, args: Json) -> Json:
        return {"ok": True, "usergroups": list(self.usergroups.values())}

    def _m_usergroups_create(self, args: Json) -> Json:
        group_id = f"S{next(self._ids):07d}"
        self.usergroups[group_id] = {
            "id": group_id,
            "name": args.get("name"),
            "handle": args.get("handle") or args.get("name"),
            "users": [],
        }
        return {"ok": True, "usergroup": self.usergroups[group_id]}

    def _m_usergroups_users_update(self, args: Json) -> Json:
        group = self.usergroups.get(str(args.get("usergroup")))
        if group is None:
            raise _SlackError("no_such_subteam")
        group["users"] = [u for u in str(args.get("users") or "").split(",") if u]
        return {"ok": True, "usergroup": group}

    def _m_usergroups_users_list(self, args: Json) -> Json:
        group = self.usergroups.get(str(args.get("usergroup")))
        if group is None:
            raise _SlackError("no_such_subteam")
        return {"ok": True, "users": group["users"]}

    def _m_files_getUploadURLExternal(self, args: Json) -> Json:
        if not args.get("filename") or not str(args.get("length") or "").isdigit():
            raise _SlackError("invalid_arguments")
        file_id = f"F{next(self._ids):07d}"
        self._uploads[file_id] = {
            "id": file_id,
            "name": args.get("filename"),
            "length": int(args.get("length") or 0),
            "content": b"",
        }
        return {
            "ok": True,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            "file_id": file_id,
        }

    def _upload(self, file_id: str, body: bytes) -> tuple[int, str]:
        """The upload URL (step 2): plain HTTP, not the Web API; it answers "OK - <length>".

        Faults queued for the method name "files.upload" apply to it, and `upload_seconds`
        makes it as slow as a large file over a real uplink.
        """
        if self.upload_seconds:
            time.sleep(self.upload_seconds)
        with self._changed:
            status, _, _ = self._fault_for("files.upload")
            if status == 200:
                if file_id not in self._uploads:
                    status = 404
                else:
                    self._uploads[file_id]["content"] = body
            self._calls.append(
                Call("files.upload", {"file_id": file_id, "length": len(body)}, time.monotonic(), status)
            )
            self._changed.notify_all()
            return status, f"OK - {len(body)}" if status == 200 else "error"

    def _m_files_completeUploadExternal(self, args: Json) -> Json:
        files = args.get("files") or []
        if not isinstance(files, list) or not files:
            raise _SlackError("invalid_arguments")
        channel: str | None = None
        thread_ts = str(args.get("thread_ts") or "") or None
        if args.get("channel_id"):
            channel = self._channel({"channel": args["channel_id"]})
            if BOT_USER not in self.members.get(channel, set()) and channel.startswith("C"):
                raise _SlackError("not_in_channel")
            if thread_ts and not any(p.ts == thread_ts for p in self.posts[channel]):
                raise _SlackError("invalid_thread_ts")
        for entry in files:
            upload = self._uploads.get(str(entry.get("id")))
            if upload is None:
                raise _SlackError("file_not_found")
            if len(upload["content"]) != upload["length"]:
                # Slack checks the bytes it received against the length announced in step 1.
                raise _SlackError("file_upload_size_mismatch")
        done = []
        shared: list[Json] = []
        for entry in files:
            upload = self._uploads.pop(str(entry.get("id")))
            name = str(upload["name"])
            record = {
                **upload,
                "title": entry.get("title") or name,
                "channel": channel,
                "thread_ts": thread_ts,
                "initial_comment": args.get("initial_comment"),
                "size": len(upload["content"]),
            }
            self.files.append(record)
            info = {
                "id": record["id"],
                "name": name,
                "title": record["title"],
                # Slack detects the type itself; the stand-in guesses from the name.
                "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "size": record["size"],
                "user": BOT_USER,
            }
            shared.append({**info, "content": upload["content"]})
            done.append({"id": record["id"], "title": record["title"], "name": name})
        if channel is not None:
            # Shared with one message holding the files, in the channel or the thread, as Slack does.
            post = self._store(
                channel, BOT_USER, str(args.get("initial_comment") or ""), None, None, thread_ts
            )
            post.files = shared
            for record in self.files[-len(shared) :]:
                record["ts"] = post.ts
        return {"ok": True, "files": done}

    def shared_files(self, channel: str, thread_ts: str | None = None) -> list[Json]:
        """Files shared into a channel (or one thread of it), oldest first, with their bytes."""
        with self._lock:
            return [
                f
                for f in self.files
                if f.get("channel") == channel and (thread_ts is None or f.get("thread_ts") == thread_ts)
            ]


class _SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error

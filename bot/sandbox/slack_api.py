"""A local stand-in for Slack's Web API, good enough for the real `slack_sdk` client.

It keeps a small workspace in memory (channels, threads, metadata, users, DMs,
views, user groups), records every call with its arguments and HTTP status, and
can misbehave on demand: 429 with Retry-After, 5xx, `ok: false` errors, or a
whole outage. The test suite and the local sandbox both drive it.

This module is the HTTP side, the faults and what tests read back; the workspace and
the methods are in `slack_workspace` and the method modules beside it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from bot.sandbox import slack_chat, slack_conversations, slack_files, slack_people, slack_views
from bot.sandbox.slack_workspace import BOT_USER, TEAM, Call, Json, Method, SlackError, Workspace

# Every Web API method the stand-in answers, by name.
METHODS: dict[str, Method] = {
    **slack_chat.METHODS,
    **slack_conversations.METHODS,
    **slack_people.METHODS,
    **slack_views.METHODS,
    **slack_files.METHODS,
}


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


class SlackStandIn(Workspace):
    def __init__(self, channels: tuple[str, ...] = ("C0SUPPORT",), port: int = 0) -> None:
        super().__init__(channels)
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self.upload_seconds = 0.0  # how long the upload URL takes to answer (step 2 of a file upload)
        # Added to every Web API call, as a far-away or busy Slack takes (set per test).
        self.latency = 0.0
        self._down = False
        self._response_urls: dict[str, tuple[str, str]] = {}
        self.add_user(BOT_USER, "supportbot", "supportbot", is_bot=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.root_url = f"http://127.0.0.1:{self.port}"

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

    def schedule_dnd(self, user: str, start: float, end: float) -> None:
        """A Do Not Disturb schedule (the user's nightly quiet hours, epoch seconds): any
        app may read it through `dnd.info`."""
        with self._lock:
            self.dnd.setdefault(user, {}).update(start=start, end=end)

    def snooze(self, user: str, minutes: float = 60) -> None:
        """The user's "Pause notifications": `dnd.info` shows it to that user only, so the
        bot (asking with its own token) never sees it, as in Slack."""
        with self._lock:
            self.dnd.setdefault(user, {})["snooze_until"] = time.time() + minutes * 60

    def post_as_user(
        self, channel: str, user: str, text: str, thread_ts: str | None = None, metadata: Json | None = None
    ) -> Json:
        """A message written in Slack by someone (or by an earlier run of the bot)."""
        with self._lock:
            post = self.store(channel, user, text, [], metadata, thread_ts)
            return post.as_api(True)

    # -- what Slack hands out with each interaction ------------------------------------------

    def issue_trigger(self, user: str) -> str:
        """A trigger_id for an interaction by `user`: a modal opened with it is theirs."""
        with self._lock:
            trigger = f"{next(self.ids)}.{int(time.time())}.sandbox"
            self.trigger_users[trigger] = user
            self.trigger_issued[trigger] = time.monotonic()
            return trigger

    def issue_response_url(self, user: str, channel: str) -> str:
        """A response_url for an interaction by `user` in `channel`; what the app posts there
        is shown to that user (or to the channel, with response_type in_channel)."""
        with self._lock:
            token = f"R{next(self.ids):07d}"
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
                "ts": self.next_ts(),
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
                self.check_message("response_url", body.get("text"), blocks, None)
            except SlackError as exc:
                return {"ok": False, "error": exc.error}
            if body.get("response_type") == "in_channel":
                try:
                    self.store(channel, BOT_USER, text, blocks, None, body.get("thread_ts"))
                except SlackError as exc:
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

    def submission_problems(self, view_id: str, answer: Json) -> list[str]:
        """What Slack would refuse in the app's answer to a view_submission: `errors` may
        name input blocks only (and not none). Slack then shows the person a generic failure
        instead of the errors."""
        if answer.get("response_action") != "errors":
            return []
        with self._lock:
            view = self.views.get(view_id) or {}
            inputs = {str(b.get("block_id")) for b in view.get("blocks") or [] if b.get("type") == "input"}
            errors = answer.get("errors")
            if not isinstance(errors, dict) or not errors:
                return ["errors: none given"]
            return [f"errors: {k!r} is not an input block" for k in errors if str(k) not in inputs]

    def check_submission_answer(self, view_id: str, answer: Json) -> list[str]:
        """`submission_problems`, recorded in `invalid` like a refused post."""
        problems = self.submission_problems(view_id, answer)
        if problems:
            with self._lock:
                self.invalid.append(("view_submission", problems))
        return problems

    def answer_submission(self, user: str, view_id: str, answer: Json) -> None:
        """Do what Slack does with the app's answer to a view_submission: show field errors,
        replace or push a view, clear the stack, or (an empty answer) close the modal."""
        with self._changed:
            action = answer.get("response_action")
            stack = self.modal_stacks.setdefault(user, [])
            if action == "errors" and self.submission_problems(view_id, answer):
                # Refused: the modal stays as it was, with no field errors to read.
                self.modal_errors[view_id] = {}
            elif action == "errors":
                self.modal_errors[view_id] = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
            elif action == "update" and isinstance(answer.get("view"), dict):
                self.modal_errors.pop(view_id, None)
                self.store_view(answer["view"], view_id)
            elif action == "push" and isinstance(answer.get("view"), dict):
                stack.append(self.store_view(answer["view"])["id"])
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
                item["replies"] = [p.as_api(True) for p in self.replies(channel, post.ts)]
                out.append(item)
            return out

    def thread(self, channel: str, ts: str) -> list[Json]:
        """The parent then its replies, oldest first."""
        with self._lock:
            parent = next((p for p in self.posts.get(channel, []) if p.ts == ts), None)
            if parent is None:
                return []
            return [parent.as_api(True)] + [p.as_api(True) for p in self.replies(channel, ts)]

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
                if path.startswith("/files-pri/"):
                    status, data = standin._private_file(path, self.headers.get("Authorization") or "")
                    self.send_response(status)
                    self.send_header("Content-Type", "application/octet-stream")
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
        if self.latency:
            # Outside the lock: calls from several threads are slow side by side, not in a queue.
            time.sleep(self.latency)
        with self._changed:
            status, payload, headers = self._fault_for(method)
            if status == 200 and not payload:
                handler = METHODS.get(method)
                if handler is None:
                    payload = {"ok": False, "error": "unknown_method"}
                else:
                    try:
                        payload = handler(self, args)
                    except SlackError as exc:
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
                if file_id not in self.uploads:
                    status = 404
                else:
                    self.uploads[file_id]["content"] = body
            self._calls.append(
                Call("files.upload", {"file_id": file_id, "length": len(body)}, time.monotonic(), status)
            )
            self._changed.notify_all()
            return status, f"OK - {len(body)}" if status == 200 else "error"

    def user_file(self, name: str, content: bytes) -> Json:
        """A file someone picked in a modal's file_input: what the view_submission carries.

        Slack serves `url_private` only to a request with a token (Authorization: Bearer).
        """
        with self._lock:
            file_id = f"F{next(self.ids):07d}"
            url = f"{self.root_url}/files-pri/{TEAM}-{file_id}/{name}"
            record = {"id": file_id, "name": name, "title": name, "size": len(content), "content": content}
            record.update({"url_private": url, "url_private_download": url + "?download=1"})
            self.files.append(record)
            return {k: v for k, v in record.items() if k != "content"}

    def _private_file(self, path: str, authorization: str) -> tuple[int, bytes]:
        if not authorization.startswith("Bearer xox"):
            return 403, b"not authorised"
        with self._lock:
            found = next((f for f in self.files if f.get("url_private", "").endswith(path)), None)
        return (404, b"") if found is None else (200, bytes(found["content"]))

    def shared_files(self, channel: str, thread_ts: str | None = None) -> list[Json]:
        """Files shared into a channel (or one thread of it), oldest first, with their bytes."""
        with self._lock:
            return [
                f
                for f in self.files
                if f.get("channel") == channel and (thread_ts is None or f.get("thread_ts") == thread_ts)
            ]

"""A stand-in for Slack's Socket Mode: the WebSocket end of it, beside the Web API stand-in.

Slack's side of Socket Mode, as documented (docs.slack.dev, "Using Socket Mode"):
`apps.connections.open` (app-level token) hands out a fresh `wss://` URL; on connecting,
Slack sends `{"type": "hello", ...}`; then each request comes in an envelope
`{"envelope_id", "type": "slash_commands" | "interactive" | "events_api", "payload",
"accepts_response_payload"}` (events also carry `retry_attempt` and `retry_reason`), and
the app acknowledges it by sending back `{"envelope_id", "payload"?}`. An event not
acknowledged is sent again with `retry_attempt` counting up. Before Slack recycles a
connection it sends `{"type": "disconnect", "reason": "warning"}`, then
`"refresh_requested"`, and then closes the socket; the app must have opened a new one.

The bot's own client is slack_sdk's built-in Socket Mode client, unchanged: it reaches this
server through the URL the Web API stand-in returns from `apps.connections.open`. The sandbox
(SANDBOX_TRANSPORT=socket, the default) and the test suite (tests/support/socket_mode.py) share
this one stand-in. `websockets` is imported here only, so the sandbox can fall back to HTTP
where it is not installed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_requests import APP_ID, NOT_ACKNOWLEDGED, Answer, SlackUser

Json = dict[str, Any]

# How long Slack waits for an acknowledgement is 3 s; the stand-in waits as long as the
# sandbox's HTTP requests do, so a busy laptop is not mistaken for a bot that never answered.
ACK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    payload: Json | None
    seconds: float  # from sending the envelope to its acknowledgement


class SocketModeStandIn:
    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        # Slack pings the app, and the app pings Slack; the built-in client sends its own
        # pings, so this side only answers them.
        self._server: Server = serve(self._serve, "127.0.0.1", 0, ping_interval=None)
        self._changed = threading.Condition()
        self._tickets = itertools.count(1)
        self._live: list[ServerConnection] = []
        self._sent: dict[str, float] = {}
        self._acks: dict[str, Ack] = {}
        self.connections = 0  # sockets opened so far
        # How long a request waits for its acknowledgement before it reads as NOT_ACKNOWLEDGED.
        self.ack_timeout = ACK_TIMEOUT
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def start(self) -> SocketModeStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, name="socket-mode", daemon=True)
        self._thread.start()
        self.slack.socket_url = self._new_url
        return self

    def stop(self) -> None:
        self.slack.socket_url = None
        self.drop()
        if self._thread is None:
            # Never served: shutdown() would wait for serve_forever() to let go of the socket.
            self._server.socket.close()
            return
        self._server.shutdown()

    def __enter__(self) -> SocketModeStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _new_url(self) -> str:
        # Slack's URLs carry a one-time ticket; a new one per apps.connections.open.
        return f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._tickets)}&app_id={APP_ID}"

    def _serve(self, conn: ServerConnection) -> None:
        with self._changed:
            self._live.append(conn)
            self.connections += 1
            self._changed.notify_all()
        try:
            conn.send(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": len(self._live),
                        "debug_info": {"host": "applink-standin", "approximate_connection_time": 18060},
                        "connection_info": {"app_id": APP_ID},
                    }
                )
            )
            for raw in conn:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
                if not envelope_id:
                    continue
                with self._changed:
                    sent = self._sent.get(envelope_id, time.monotonic())
                    self._acks[envelope_id] = Ack(
                        envelope_id, message.get("payload"), time.monotonic() - sent
                    )
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                if conn in self._live:
                    self._live.remove(conn)
                self._changed.notify_all()

    # -- what Slack sends -----------------------------------------------------------------

    def wait_connected(self, count: int = 1, timeout: float = 15.0) -> None:
        """Until `count` sockets have been opened in all, and one is open now."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.connections < count or not self._live:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.connections} of {count} Socket Mode connections after {timeout}s"
                    )
                self._changed.wait(left)

    def deliver(
        self,
        kind: str,
        payload: Json,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_id: str | None = None,
        timeout: float = 15.0,
    ) -> str:
        """Send one envelope on the newest open socket; its id, to wait for the ack with."""
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope: Json = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            # Slack takes a response payload for slash commands and view submissions (and
            # option loads); for a click or an event the ack is only a receipt.
            "accepts_response_payload": kind == "slash_commands"
            or payload.get("type") in ("view_submission", "block_suggestion"),
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        self.wait_connected(timeout=timeout)
        with self._changed:
            conn = self._live[-1]
            self._sent[envelope_id] = time.monotonic()
        conn.send(json.dumps(envelope))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"envelope {envelope_id} not acknowledged after {timeout}s")
                self._changed.wait(left)
            return self._acks[envelope_id]

    def acks(self) -> list[Ack]:
        """Every acknowledgement so far, in the order they came (dicts keep insertion order)."""
        with self._changed:
            return list(self._acks.values())

    def request(self, kind: str, payload: Json, timeout: float | None = None) -> Answer:
        """Deliver an envelope and read the acknowledgement as Slack would show it; a request
        no socket took, or nobody acknowledged in time, reads as `NOT_ACKNOWLEDGED`."""
        timeout = self.ack_timeout if timeout is None else timeout
        try:
            ack = self.wait_ack(self.deliver(kind, payload, timeout=timeout), timeout)
        except (TimeoutError, ConnectionClosed):
            return Answer(NOT_ACKNOWLEDGED, b"")
        return Answer(200, json.dumps(ack.payload).encode() if ack.payload else b"")

    def refresh(self, grace: float = 10.0) -> None:
        """Recycle the connection as Slack does: a `warning`, then `refresh_requested`, each
        followed by up to `grace` seconds for the app to open a new socket; then the old
        sockets are closed."""
        with self._changed:
            old = list(self._live)
        for reason in ("warning", "refresh_requested"):
            with self._changed:
                opened = self.connections
            message = json.dumps(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}}
            )
            for conn in old:
                with contextlib.suppress(ConnectionClosed):  # the app already left it
                    conn.send(message)
            deadline = time.monotonic() + grace
            with self._changed:
                while self.connections == opened and time.monotonic() < deadline:
                    self._changed.wait(deadline - time.monotonic())
                if self.connections > opened:
                    break
        for conn in old:
            conn.close()

    def drop(self) -> None:
        """Cut every open socket without a closing handshake, as a network failure does."""
        with self._changed:
            # Gone at once, as far as sending goes: the handler notices the cut a moment later.
            live, self._live = list(self._live), []
            self._changed.notify_all()
        for conn in live:
            with contextlib.suppress(OSError):
                conn.socket.shutdown(socket.SHUT_RDWR)


class SocketUser(SlackUser):
    """A person whose commands, clicks, submissions and events reach the bot over Socket Mode:
    the same payloads as over HTTP, in envelopes (nothing is signed on a socket)."""

    def __init__(
        self, socket_mode: SocketModeStandIn, user_id: str, name: str | None = None, *, channel: str
    ) -> None:
        super().__init__("http://unused", socket_mode.slack, user_id, name, secret="", channel=channel)
        self.socket_mode = socket_mode

    def send_interaction(self, payload: Json, **signing: Any) -> Answer:
        return self.socket_mode.request("interactive", payload)

    def send_command(self, fields: dict[str, str], **signing: Any) -> Answer:
        return self.socket_mode.request("slash_commands", dict(fields))

    def send_event(self, envelope: Json) -> Answer:
        return self.socket_mode.request("events_api", envelope)

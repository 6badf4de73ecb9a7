"""The Socket Mode stand-in (bot/sandbox/socket_mode.py, shared with the sandbox), with the
test suite's support channel as every user's default."""

from __future__ import annotations

from bot.sandbox import socket_mode as shared
from bot.sandbox.socket_mode import Ack, SocketModeStandIn
from tests.support.harness import CHANNEL

__all__ = ["Ack", "SocketModeStandIn", "SocketUser"]


class SocketUser(shared.SocketUser):
    def __init__(
        self, socket_mode: SocketModeStandIn, user_id: str, name: str | None = None, *, channel: str = CHANNEL
    ) -> None:
        super().__init__(socket_mode, user_id, name, channel=channel)

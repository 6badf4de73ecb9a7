"""Who may act: staff (members of the support channel) on tickets, managers on rota
administration. Checked in one place, before any listener body runs."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

if TYPE_CHECKING:
    from bot.app import Services

_CACHE_SECONDS = 60.0


class Access:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._members: frozenset[str] = frozenset()
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def is_manager(self, user: str) -> bool:
        return user in self.services.settings.managers

    def is_staff(self, user: str) -> bool:
        return self.is_manager(user) or user in self._channel_members()

    def _channel_members(self) -> frozenset[str]:
        # Membership changes rarely; asking Slack on every click would hit rate limits.
        with self._lock:
            if time.monotonic() - self._fetched_at < _CACHE_SECONDS:
                return self._members
            members: set[str] = set()
            cursor = None
            try:
                while True:
                    response = self.services.client.conversations_members(
                        channel=self.services.settings.support_channel, limit=1000, cursor=cursor
                    )
                    members.update(response.get("members") or [])
                    cursor = (response.get("response_metadata") or {}).get("next_cursor")
                    if not cursor:
                        break
            except SlackApiError:
                # Keep the last known list rather than locking everyone out during a Slack hiccup.
                return self._members
            self._members = frozenset(members)
            self._fetched_at = time.monotonic()
            return self._members


NOT_STAFF = "Only members of the support channel can work on tickets."
NOT_MANAGER = "Only managers can do that. Ask one of: {managers}."

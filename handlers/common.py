"""What every listener needs: reading ids out of payloads, running one domain call in a
transaction, and people's display names."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from bot.outbox.queue import notify_workers
from bot.storage.db import transaction

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)
T = TypeVar("T")


def action_value(body: dict[str, Any]) -> str:
    action = (body.get("actions") or [{}])[0]
    return str(action.get("value") or (action.get("selected_option") or {}).get("value") or "")


def ticket_id_of(value: str) -> int | None:
    """Button values are the ticket id; overflow values are `verb:id`."""
    try:
        return int(value.rsplit(":", 1)[-1])
    except ValueError:
        return None


def view_metadata(body: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads((body.get("view") or {}).get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@contextmanager
def unit_of_work(services: Services) -> Iterator[Session]:
    """One transaction; its outbox rows are handed to the worker as soon as it commits."""
    with transaction(services.factory) as session:
        yield session
    notify_workers()


def run_domain(services: Services, call: Callable[[Session], T]) -> T:
    with unit_of_work(services) as session:
        return call(session)


class People:
    """Display names from Slack, cached: an agent's name goes into every reply's From."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def name(self, user: str) -> str:
        with self._lock:
            if user in self._names:
                return self._names[user]
        try:
            info = self.client.users_info(user=user).get("user") or {}
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user, exc)
            return "Support team"
        profile = info.get("profile") or {}
        # Customers read this in the From line: a full name, not a Slack handle.
        name = (
            profile.get("real_name")
            or info.get("real_name")
            or profile.get("display_name")
            or info.get("name")
        )
        name = str(name or "Support team")
        with self._lock:
            self._names[user] = name
        return name

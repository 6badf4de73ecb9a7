"""What every listener needs: reading ids out of payloads, running one domain call in a
transaction, and people's display names."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from bot.outbox.queue import notify_workers
from bot.services import Services
from bot.storage.db import reading, transaction

log = logging.getLogger(__name__)
T = TypeVar("T")


def action_value(body: dict[str, Any]) -> str:
    action = (body.get("actions") or [{}])[0]
    return str(action.get("value") or (action.get("selected_option") or {}).get("value") or "")


# Ids are INTEGER columns: a larger number from a tampered payload would make the
# database raise (PostgreSQL: out of range; SQLite: too large) instead of "not found".
_MAX_ID = 2**31 - 1


def id_of(value: Any) -> int | None:
    """A row id read from a payload: a positive whole number in range, else None."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > len(str(_MAX_ID)):
        return None
    number = int(text)
    return number if 0 < number <= _MAX_ID else None


def ticket_id_of(value: str) -> int | None:
    """Button values are the ticket id; overflow values are `verb:id`."""
    return id_of(value.rsplit(":", 1)[-1])


def unstorable(text: str) -> str | None:
    """Why typed text cannot be used at all, or None.

    PostgreSQL refuses NUL in any text parameter, lookups included; refusing it on SQLite
    too keeps the answer the same on both.
    """
    if "\x00" in text:
        return (
            "Your command contains a NUL character (\\0), which I can't store or search for. "
            "Remove it and try again."
        )
    return None


NUL_IN_FIELD = "This contains a NUL character (\\0), which I can't store. Remove it and try again."


def fields_with_nul(body: dict[str, Any]) -> dict[str, str]:
    """A submitted modal's inputs holding a NUL, each with the error Slack shows beside it.

    Checked once for every modal (in `guarded`), before its listener: PostgreSQL refuses
    NUL in text, SQLite would store it, and a form added later needs no check of its own.
    """
    view = body.get("view")
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        return {}
    return {str(block): NUL_IN_FIELD for block, inputs in values.items() if _holds_nul(inputs)}


def _holds_nul(value: Any) -> bool:
    # Selects too: Slack sends back only our own options, but a forged one reaches a lookup.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def without_nul(text: str) -> str:
    """Text as a database can hold it: NUL dropped (invisible in Slack, refused by PostgreSQL)."""
    return text.replace("\x00", "")


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


def read_domain(services: Services, call: Callable[[Session], T]) -> T:
    """A domain call that only reads (queues, timelines, cards): on SQLite it does not wait
    for the write lock that ingestion and the outbox hold most of the time under load."""
    with reading(services.factory) as session:
        return call(session)


class People:
    """Agents' full names from Slack, cached: a name goes into every reply's From and `agent_name`."""

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

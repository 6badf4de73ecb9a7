"""Slack's Web API as the outbox's delivery sees it: one call translated into the outbox's
outcomes, and the base of every Slack handler.

Posts carry message metadata naming their outbox row; when a row is tried a
second time (the first try may have reached Slack before a crash) the handler
first looks for that metadata in the channel or thread and adopts the post it
finds instead of posting again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox.worker import PermanentFailure, RetryLater
from bot.storage.models import OutboxItem

# Errors Slack documents as temporary; everything else that is not ok is a bad request.
_TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
# How far back a retry looks for its own earlier post.
_LOOKBACK = timedelta(hours=1)
_LOOKUP_PAGES = 10


def call_slack(fn: Any, **kwargs: Any) -> dict[str, Any]:
    """Call one Web API method, translating failures into the outbox's two outcomes."""
    try:
        response = fn(**kwargs)
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        if status == 429 or error == "ratelimited":
            retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
            try:
                after = float(retry_after) if retry_after is not None else 1.0
            except ValueError:
                after = 1.0
            raise RetryLater(f"rate limited, Retry-After {after:g}s", after=after) from None
        if status >= 500 or error in _TRANSIENT:
            raise RetryLater(f"Slack answered {status} {error}".strip()) from None
        raise PermanentFailure(f"Slack refused: {error or status}") from None
    except (SlackClientError, OSError) as exc:  # network trouble: connection refused, timeout, DNS
        raise RetryLater(f"cannot reach Slack: {type(exc).__name__}: {exc}") from None
    return dict(response.data) if isinstance(response.data, dict) else {}


class SlackHandler:
    def __init__(self, client: WebClient, factory: sessionmaker[Session]) -> None:
        self.client = client
        self.factory = factory

    def post(self, channel: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return call_slack(self.client.chat_postMessage, channel=channel, **kwargs)
        except PermanentFailure as exc:
            if "not_in_channel" not in str(exc):
                raise
        # A public channel the bot was never added to: join it, then post once more.
        call_slack(self.client.conversations_join, channel=channel)
        return call_slack(self.client.chat_postMessage, channel=channel, **kwargs)

    def earlier_post(
        self, channel: str, item: OutboxItem, thread_ts: str | None = None
    ) -> dict[str, Any] | None:
        """On a retry, the result of an earlier try that got through (its message is adopted,
        not posted twice); None on the first try or when no earlier try posted."""
        if item.attempts > 1:
            ts = self.find_posted(channel, item, thread_ts=thread_ts)
            if ts is not None:
                return {"channel": channel, "ts": ts, "adopted": True}
        return None

    def find_posted(self, channel: str, item: OutboxItem, thread_ts: str | None = None) -> str | None:
        """The ts of a message this row already posted, if an earlier try got through."""
        for message in self._recent(channel, item, thread_ts):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if payload.get("outbox_id") == item.id:
                return str(message["ts"])
        return None

    def _recent(self, channel: str, item: OutboxItem, thread_ts: str | None) -> Iterator[dict[str, Any]]:
        oldest = f"{(item.created_at - _LOOKBACK).timestamp():.6f}"
        cursor: str | None = None
        for _ in range(_LOOKUP_PAGES):
            args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
            if cursor:
                args["cursor"] = cursor
            if thread_ts is not None:
                data = call_slack(self.client.conversations_replies, ts=thread_ts, **args)
            else:
                data = call_slack(self.client.conversations_history, oldest=oldest, **args)
            yield from data.get("messages", [])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        return None

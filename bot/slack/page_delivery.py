"""Outbox handlers that read a person's Do Not Disturb: after a page DM, and at duty start.

They do the Slack I/O only; what a paused phone means (escalate sooner, who to warn) is
the rota's to decide (rota/paging_jobs.py, rota/handoff_jobs.py), and the words are
bot/slack/paging.py's and bot/slack/handoffs.py's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.outbox.worker import PermanentFailure, RetryLater
from bot.slack.handoffs import queue_dnd_warnings
from bot.slack.paging import queue_paging_notices
from bot.slack.post_delivery import PlainPostHandler
from bot.slack.web_api import SlackHandler, call_slack
from bot.storage.db import reading
from bot.storage.models import OutboxItem
from rota.handoff_jobs import duty_dnd_observed
from rota.paging import PagePolicy
from rota.paging_jobs import dnd_observed

log = logging.getLogger(__name__)


def notifications_paused(client: WebClient, user: str, now: float | None = None) -> bool:
    """Whether `user`'s Do Not Disturb schedule holds back their notifications right now.

    Only the schedule can be seen: Slack shows `snooze_*` (a manual "Pause notifications")
    to the user themselves, never to an app asking about them. A paused phone is covered
    by the chain instead: no answer repeats the page, then pages the backup."""
    data = call_slack(client.dnd_info, user=user)
    if not data.get("dnd_enabled"):
        return False
    start, end = data.get("next_dnd_start_ts"), data.get("next_dnd_end_ts")
    if start is None or end is None:
        return True
    moment = time.time() if now is None else now
    return float(start) <= moment < float(end)


class PageHandler(PlainPostHandler):
    """The page DM, then a look at the person's Do Not Disturb state for the rota to weigh."""

    def __init__(self, client: WebClient, factory: sessionmaker[Session], settings: Settings | None) -> None:
        super().__init__(client, factory)
        self.settings = settings

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        payload = item.payload
        fields = {k: payload[k] for k in ("channel", "text", "blocks") if k in payload}
        result = self.post_payload(item, fields)
        try:
            result["dnd"] = notifications_paused(self.client, payload["user"])
        except (RetryLater, PermanentFailure) as exc:
            # The page is out; not knowing about DND must not send it again.
            log.warning("could not read Do Not Disturb for %s: %s", payload["user"], exc)
            result["dnd"] = None
        return result

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        if result.get("dnd") is None or self.settings is None:
            return
        payload = item.payload
        notices = dnd_observed(
            session,
            int(payload["page_id"]),
            int(payload["step"]),
            payload["user"],
            paused=bool(result["dnd"]),
            policy=PagePolicy.from_settings(self.settings),
        )
        queue_paging_notices(session, notices, item.created_at, support_channel=self.settings.support_channel)


class DndCheckHandler(SlackHandler):
    """At duty start: reads whether the new holder's notifications are paused."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        return {"paused": notifications_paused(self.client, item.payload["user"])}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        notices = duty_dnd_observed(
            item.id,
            item.payload["user"],
            item.payload.get("managers") or [],
            paused=bool(result.get("paused")),
        )
        queue_dnd_warnings(session, notices, item.created_at)


class PageCloseHandler(SlackHandler):
    """Rewrites one page DM once the page is over: its buttons give way to the outcome.

    Queued in the page DM's own lane, after it, so the DM is out before its rewrite; a
    page DM that never went out (dead) has nothing to rewrite. chat.update is idempotent,
    so a retry after a crash just writes the same again.
    """

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with reading(self.factory) as session:
            page = session.get(OutboxItem, int(item.payload["page_item"]))
            if page is None or page.status == "dead":
                return {"skipped": "the page DM never went out"}
            if page.status != "done":
                raise RetryLater("the page DM is not out yet")
            channel, ts = page.result.get("channel"), page.result.get("ts")
            blocks = [b for b in page.payload.get("blocks") or [] if b.get("type") != "actions"]
            text = str(page.payload.get("text") or "")
        if not channel or not ts:
            return {"skipped": "no message to rewrite"}
        outcome = str(item.payload["outcome"])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]})
        call_slack(self.client.chat_update, channel=channel, ts=ts, text=text or outcome, blocks=blocks)
        return {"channel": channel, "ts": ts}

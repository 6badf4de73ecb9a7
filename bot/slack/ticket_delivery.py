"""Outbox handlers for a ticket's own Slack messages: its channel post and the post's
edits, the stored messages in its thread, and short notices there."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.outbox.queue import SLACK_TICKET_POST
from bot.outbox.worker import PermanentFailure, RetryLater
from bot.slack import render
from bot.slack.web_api import SlackHandler, call_slack
from bot.storage.db import reading
from bot.storage.models import Message, OutboxItem, Ticket
from bot.tickets.views import message_card, ticket_card

log = logging.getLogger(__name__)


class TicketPostHandler(SlackHandler):
    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with reading(self.factory) as session:
            card = ticket_card(session, item.ticket_id or 0)
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel = ticket.slack_channel if ticket else None
        if card is None or not channel:
            raise PermanentFailure(f"ticket {item.ticket_id} no longer exists")
        if item.attempts > 1:
            ts = self.find_posted(channel, item)
            if ts is not None:
                log.info("ticket #%s was already posted (ts %s); not posting again", card.number, ts)
                return {"channel": channel, "ts": ts, "adopted": True}
        text, blocks = render.ticket_message(card)
        data = self.post(
            channel,
            text=text,
            blocks=blocks,
            metadata=render.ticket_metadata(card, item.id),
            unfurl_links=False,
        )
        return {"channel": data.get("channel", channel), "ts": data["ts"]}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        ticket = session.get(Ticket, item.ticket_id or 0)
        if ticket is not None:
            ticket.slack_channel = result["channel"]
            ticket.slack_ts = result["ts"]


class TicketRefreshHandler(SlackHandler):
    def _post_on_its_way(self, ticket_id: int) -> bool:
        with reading(self.factory) as session:
            return (
                session.scalar(
                    select(OutboxItem.id).where(
                        OutboxItem.ticket_id == ticket_id,
                        OutboxItem.kind == SLACK_TICKET_POST,
                        OutboxItem.status == "pending",
                    )
                )
                is not None
            )

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with reading(self.factory) as session:
            card = ticket_card(session, item.ticket_id or 0)
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel, ts = (ticket.slack_channel, ticket.slack_ts) if ticket else (None, None)
        if card is None or not channel:
            raise PermanentFailure(f"ticket {item.ticket_id} no longer exists")
        if ts is None:
            if self._post_on_its_way(item.ticket_id or 0):
                # Edits have a lane of their own: this one may overtake the post it edits.
                # The post may already be rendered with older state, so wait for its ts.
                raise RetryLater("the ticket's message is not posted yet")
            # The post itself was set aside; nothing to update (it renders fresh state if revived).
            return {"skipped": "ticket message not posted"}
        text, blocks = render.ticket_message(card)
        # chat.update is idempotent: a repeat after a crash just writes the same state.
        call_slack(
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=text,
            blocks=blocks,
            metadata=render.ticket_metadata(card, item.id),
        )
        return {"channel": channel, "ts": ts}


class ThreadMessageHandler(SlackHandler):
    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        message_id = int(item.payload["message_id"])
        with reading(self.factory) as session:
            card = message_card(session, message_id)
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel, parent = (ticket.slack_channel, ticket.slack_ts) if ticket else (None, None)
        if card is None or not channel:
            raise PermanentFailure(f"message {message_id} no longer exists")
        if parent is None:
            # Rows ahead in this lane post the ticket first; if that was set aside, wait for a person.
            raise RetryLater("the ticket's own message is not posted yet", after=30)
        if (adopted := self.earlier_post(channel, item, thread_ts=parent)) is not None:
            return adopted
        text, blocks = render.thread_message(card)
        data = self.post(
            channel,
            thread_ts=parent,
            text=text,
            blocks=blocks,
            metadata=render.message_metadata(card, item.id),
            unfurl_links=False,
        )
        return {"channel": channel, "ts": data["ts"]}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        message = session.get(Message, int(item.payload["message_id"]))
        if message is not None:
            message.slack_ts = result["ts"]


class TicketNoticeHandler(SlackHandler):
    """A short text in a ticket's thread (paging progress); waits until the ticket itself is posted."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with reading(self.factory) as session:
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel, parent = (ticket.slack_channel, ticket.slack_ts) if ticket else (None, None)
        if not channel:
            raise PermanentFailure(f"ticket {item.ticket_id} no longer exists")
        if parent is None:
            raise RetryLater("the ticket's own message is not posted yet", after=5)
        if (adopted := self.earlier_post(channel, item, thread_ts=parent)) is not None:
            return adopted
        metadata = {"event_type": "supportbot_notice", "event_payload": {"outbox_id": item.id}}
        data = self.post(channel, thread_ts=parent, text=item.payload["text"], metadata=metadata)
        return {"channel": channel, "ts": data["ts"]}

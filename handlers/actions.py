"""Buttons on the ticket message: Claim and Resolve (Reply and Tag open modals, in views)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.outbox.queue import notify_workers
from bot.slack.render import ACTION_CLAIM, ACTION_RESOLVE
from bot.storage.db import transaction
from bot.tickets.workflow import TicketError, claim_ticket, resolve_ticket
from handlers.access import NOT_STAFF, Access

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.app import Services

log = logging.getLogger(__name__)


def _ticket_id(body: dict[str, Any]) -> int | None:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _tell(client: Any, body: dict[str, Any], text: str) -> None:
    """An ephemeral answer to the person who clicked, in the channel they clicked in."""
    channel = (body.get("channel") or body.get("container") or {}).get("id") or body.get("container", {}).get(
        "channel_id"
    )
    user = body["user"]["id"]
    if channel:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    else:
        client.chat_postMessage(channel=user, text=text)


def register(app: App, services: Services) -> None:
    access = Access(services)

    def claim(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        user = body["user"]["id"]
        if not access.is_staff(user):
            _tell(client, body, NOT_STAFF)
            return
        ticket_id = _ticket_id(body)
        if ticket_id is None:
            _tell(client, body, "That button carries no ticket; the message may be from an old version.")
            return
        try:
            with transaction(services.factory) as session:
                result = claim_ticket(session, ticket_id, user, services.clock.now())
        except TicketError as exc:
            _tell(client, body, str(exc))
            return
        notify_workers()
        if not result.claimed:
            owner = "you" if result.owner == user else f"<@{result.owner}>"
            _tell(client, body, f"Ticket #{result.number} is already claimed by {owner}.")

    def resolve(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        user = body["user"]["id"]
        if not access.is_staff(user):
            _tell(client, body, NOT_STAFF)
            return
        ticket_id = _ticket_id(body)
        if ticket_id is None:
            _tell(client, body, "That button carries no ticket; the message may be from an old version.")
            return
        try:
            with transaction(services.factory) as session:
                resolve_ticket(session, ticket_id, user, services.clock.now())
        except TicketError as exc:
            _tell(client, body, str(exc))
            return
        notify_workers()

    app.action(ACTION_CLAIM)(claim)
    app.action(ACTION_RESOLVE)(resolve)

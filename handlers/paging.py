"""The buttons on a page DM: Acknowledge (I'm on it) and Claim (I'm on it, and it's mine)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.slack.errors import ticket_error_text
from bot.slack.paging import ACTION_ACK, ACTION_CLAIM, queue_paging_notices
from bot.tickets.workflow import TicketError, claim_ticket
from handlers.access import Access, acting_user, guarded, tell
from handlers.common import action_value, id_of, run_domain
from rota.paging import Acknowledged, PagingError, acknowledge
from rota.paging_jobs import acknowledged

if TYPE_CHECKING:
    from slack_bolt import App
    from sqlalchemy.orm import Session

    from bot.services import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services, access: Access) -> None:
    def answer(body: dict[str, Any], client: Any, *, claim: bool) -> None:
        user = acting_user(body)
        page_id = id_of(action_value(body))
        if page_id is None:
            tell(
                client,
                body,
                "That button carries no page; the message may be from an old version of supportbot.",
            )
            return
        now = services.clock.now()

        def act(session: Session) -> tuple[Acknowledged, str | None]:
            ack = acknowledge(session, page_id, user=user, now=now)
            channel = services.settings.support_channel
            clicked = (body.get("container") or {}).get("message_ts")
            queue_paging_notices(
                session, acknowledged(ack), now, support_channel=channel, answered_in=clicked
            )
            claimed = None
            if claim:
                result = claim_ticket(session, ack.ticket_id, user, now)
                claimed = None if result.claimed or result.owner == user else result.owner
            return ack, claimed

        try:
            ack, other_owner = run_domain(services, act)
        except TicketError as exc:
            tell(client, body, ticket_error_text(exc))
            return
        except PagingError as exc:
            tell(client, body, str(exc))
            return
        if ack.first:
            done = "You acknowledged this page" + (
                " and claimed the ticket" if claim and not other_owner else ""
            )
        else:
            done = f"<@{ack.by}> had already acknowledged this page"
        if other_owner:
            done += f"; the ticket is claimed by <@{other_owner}>"
        _replace_buttons(client, body, f":white_check_mark: {done}.")

    def on_ack(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        answer(body, client, claim=False)

    def on_claim(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        answer(body, client, claim=True)

    app.action(ACTION_ACK)(guarded(access, "staff", on_ack))
    app.action(ACTION_CLAIM)(guarded(access, "staff", on_claim))


def _replace_buttons(client: Any, body: dict[str, Any], outcome: str) -> None:
    """Show the outcome where the buttons were, so nobody acknowledges the same page twice."""
    container = body.get("container") or {}
    channel, ts = container.get("channel_id"), container.get("message_ts")
    message = body.get("message") or {}
    if not channel or not ts:
        tell(client, body, outcome)
        return
    blocks = [b for b in message.get("blocks") or [] if b.get("type") != "actions"]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]})
    try:
        client.chat_update(channel=channel, ts=ts, text=message.get("text") or outcome, blocks=blocks)
    except SlackApiError as exc:
        log.warning("could not update the page message: %s", exc)
        tell(client, body, outcome)

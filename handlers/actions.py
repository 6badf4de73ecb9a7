"""Buttons on the ticket message (Claim, Reply, Tag, Resolve, the ⋯ menu) and the template
picker inside the reply modal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.slack import lists, modals
from bot.slack.errors import ticket_error_text
from bot.slack.render import (
    ACTION_CLAIM,
    ACTION_MORE,
    ACTION_NOT_SPAM,
    ACTION_REPLY,
    ACTION_RESOLVE,
    ACTION_TAG,
)
from bot.tickets import queries
from bot.tickets.status import TicketStatus
from bot.tickets.views import ticket_card
from bot.tickets.workflow import (
    TicketError,
    all_tags,
    claim_ticket,
    resolve_ticket,
    set_status,
    unclaim_ticket,
)
from handlers import spam
from handlers.access import Access, acting_user, guarded, tell
from handlers.common import People, action_value, read_domain, run_domain, ticket_id_of, view_metadata
from handlers.replies import ReplyDesk

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services

NO_TICKET = "That button carries no ticket; the message may be from an old version of supportbot."

TicketButton = Callable[[dict[str, Any], Any, int], None]


def on_ticket(act: TicketButton) -> Callable[[Any, dict[str, Any], Any], None]:
    """The listener of a button on a ticket: acknowledged at once, its ticket read from the
    button (an old message's button may carry none), and the domain's refusal told to the
    person who clicked."""

    def listener(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        ticket_id = ticket_id_of(action_value(body))
        if ticket_id is None:
            tell(client, body, NO_TICKET)
            return
        try:
            act(body, client, ticket_id)
        except TicketError as exc:
            tell(client, body, ticket_error_text(exc))

    # Named for the logs; not functools.wraps, whose __wrapped__ would make `guarded` read
    # the inner signature and withhold `ack`.
    listener.__name__ = act.__name__
    return listener


def register(app: App, services: Services, access: Access, people: People) -> None:
    desk = ReplyDesk(services, people)

    def claim(body: dict[str, Any], client: Any, ticket_id: int) -> None:
        user = acting_user(body)
        result = run_domain(services, lambda s: claim_ticket(s, ticket_id, user, services.clock.now()))
        if not result.claimed:
            owner = "you" if result.owner == user else f"<@{result.owner}>"
            tell(client, body, f"Ticket #{result.number} is already claimed by {owner}.")

    def resolve(body: dict[str, Any], client: Any, ticket_id: int) -> None:
        run_domain(services, lambda s: resolve_ticket(s, ticket_id, acting_user(body), services.clock.now()))

    def reply(body: dict[str, Any], client: Any, ticket_id: int) -> None:
        client.views_open(trigger_id=body["trigger_id"], view=desk.open_view(ticket_id))

    def pick_template(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        view = body["view"]
        metadata = view_metadata(body)
        name = action_value(body)
        new_view = desk.with_template(int(metadata["ticket_id"]), name, acting_user(body), metadata, view)
        # The hash makes Slack refuse the update if the modal changed meanwhile (a double pick).
        client.views_update(view_id=view["id"], hash=view.get("hash"), view=new_view)

    def tag(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        ticket_id = ticket_id_of(action_value(body))
        card = read_domain(services, lambda s: ticket_card(s, ticket_id)) if ticket_id is not None else None
        if card is None:
            tell(client, body, NO_TICKET)
            return
        known = read_domain(services, all_tags)
        view = modals.tags_modal(ticket_id=card.id, number=card.number, known=known, current=card.tags)
        client.views_open(trigger_id=body["trigger_id"], view=view)

    def more(body: dict[str, Any], client: Any, ticket_id: int) -> None:
        verb = action_value(body).split(":", 1)[0]
        user = acting_user(body)
        now = services.clock.now()
        if verb == "unclaim":
            run_domain(
                services,
                lambda s: unclaim_ticket(s, ticket_id, user, now, manager=access.is_manager(user)),
            )
        elif verb == "waiting":
            run_domain(services, lambda s: set_status(s, ticket_id, user, TicketStatus.WAITING, now))
        elif verb == "reopen":
            run_domain(services, lambda s: set_status(s, ticket_id, user, TicketStatus.OPEN, now))
        elif verb == "spam":
            tell(client, body, spam.mark(services, access, ticket_id, user))
        elif verb == "reassign":
            card = run_domain(services, lambda s: ticket_card(s, ticket_id))
            if card is None:
                raise TicketError(NO_TICKET)
            view = modals.reassign_modal(ticket_id=card.id, number=card.number, owner=card.owner)
            client.views_open(trigger_id=body["trigger_id"], view=view)
        elif verb == "timeline":
            line = run_domain(services, lambda s: queries.ticket_line(s, ticket_id))
            if line is None:
                raise TicketError(NO_TICKET)
            timeline = run_domain(services, lambda s: queries.timeline(s, line.number))
            channel = (body.get("channel") or {}).get("id") or services.settings.support_channel
            client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=f"Timeline of #{line.number}",
                blocks=lists.timeline_blocks(timeline),
            )
        else:
            raise TicketError(f"Unknown choice {verb!r}.")

    def not_spam(body: dict[str, Any], client: Any, ticket_id: int) -> None:
        tell(client, body, spam.restore(services, ticket_id, acting_user(body)))

    app.action(ACTION_CLAIM)(guarded(access, "staff", on_ticket(claim)))
    app.action(ACTION_RESOLVE)(guarded(access, "staff", on_ticket(resolve)))
    app.action(ACTION_REPLY)(guarded(access, "staff", on_ticket(reply)))
    app.action(ACTION_TAG)(guarded(access, "staff", tag))
    app.action(ACTION_MORE)(guarded(access, "staff", on_ticket(more)))
    app.action(ACTION_NOT_SPAM)(guarded(access, "staff", on_ticket(not_spam)))
    app.action(modals.ACTION_PICK_TEMPLATE)(guarded(access, "staff", pick_template))

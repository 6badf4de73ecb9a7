"""What a person is told in Slack when a ticket action is refused.

The domain raises typed errors carrying data (bot/tickets/workflow.py); the words,
and the mentions in them, are written here, at the Slack edge.
"""

from __future__ import annotations

from bot.tickets.workflow import AlreadyOwnedBy, NotYourTicket, SetAsideAsSpam, SpamIsNotAStatus, TicketError


def ticket_error_text(error: TicketError) -> str:
    """The sentence for `error`, in mrkdwn; an error without data of its own says its message."""
    match error:
        case NotYourTicket(number=number, owner=owner, action=action):
            return f"Ticket #{number} belongs to <@{owner}>; only they or a manager can {action} it."
        case AlreadyOwnedBy(number=number, owner=owner):
            return f"Ticket #{number} already belongs to <@{owner}>."
        case SetAsideAsSpam(number=number):
            return f"Ticket #{number} is marked as spam; use *Not spam* on its card first."
        case SpamIsNotAStatus():
            return "Use *Mark as spam* in the ticket's ⋯ menu: it also blocks the sender."
    return str(error)

"""What a person is told in Slack when a ticket action is refused.

The domain raises typed errors carrying data (bot/tickets/workflow.py); the words,
and the mentions in them, are written here, at the Slack edge.
"""

from __future__ import annotations

from bot.tickets.workflow import AlreadyOwnedBy, NotYourTicket, TicketError


def ticket_error_text(error: TicketError) -> str:
    """The sentence for `error`, in mrkdwn; an error without data of its own says its message."""
    match error:
        case NotYourTicket(number=number, owner=owner, action=action):
            return f"Ticket #{number} belongs to <@{owner}>; only they or a manager can {action} it."
        case AlreadyOwnedBy(number=number, owner=owner):
            return f"Ticket #{number} already belongs to <@{owner}>."
    return str(error)

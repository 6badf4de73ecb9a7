"""The statuses a ticket can be in, as stored in `tickets.status`.

A leaf module (it imports nothing of the project) so that any layer can name a status
without pulling in the rules around it. A `StrEnum` member equals its string, so rows,
JSON event data and comparisons with values read back from the database are unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class TicketStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    WAITING = "waiting"  # on the customer
    RESOLVED = "resolved"
    # Entered and left only through bot/tickets/spam.py: those also block and unblock the sender.
    SPAM = "spam"


# In the order people read them (help texts list them so).
STATUSES: tuple[TicketStatus, ...] = tuple(TicketStatus)
# Someone still has to do something about these.
UNRESOLVED: tuple[TicketStatus, ...] = (TicketStatus.OPEN, TicketStatus.CLAIMED, TicketStatus.WAITING)
# Statuses no one works on: closed, or not a real request.
CLOSED: tuple[TicketStatus, ...] = (TicketStatus.RESOLVED, TicketStatus.SPAM)

"""What a reply template may use: the variables a ticket gives it, and stand-in values for
previews and checks."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from bot.storage.models import Customer, Ticket
from bot.tickets.replies import message_to_answer
from bot.tickets.workflow import TicketError

VARIABLES: dict[str, str] = {
    "customer_name": "The customer's name (the part of their address before @ when the name is unknown)",
    "customer_first_name": "The first word of customer_name",
    "customer_email": "The customer's address",
    "ticket_number": "The ticket's number, e.g. 123",
    "subject": "The ticket's subject",
    "agent_name": "The replying agent's full name in Slack (the display name only when that is empty)",
    "agent_first_name": "The first word of agent_name",
    "previous_message": "The customer's latest message, without quoted history",
    "support_address": "The support address (SUPPORT_ADDRESS)",
    "today": "Today's date in the team's time zone (a date: {{ today.strftime('%d/%m/%Y') }})",
}

# Values only some automatic mails have: the after-hours acknowledgement (bot/tickets/autoack.py)
# and the satisfaction survey (bot/tickets/surveys.py). A template a person may also pick
# tests them with `{% if next_opening is defined %}`.
PURPOSE_VARIABLES: dict[str, str] = {
    "next_opening": "When the team is next open, in words, in the team's time zone (acknowledgement)",
    "survey_yes_url": "The survey's one-click 'yes, solved' link (survey)",
    "survey_no_url": "The survey's one-click 'not solved yet' link (survey)",
    "survey_unsubscribe_url": "The link to stop receiving surveys (survey)",
}


def reply_variables(
    session: Session,
    ticket_id: int,
    *,
    agent_name: str,
    support_address: str,
    now: datetime,
    timezone: tzinfo | None = None,
) -> dict[str, Any]:
    """What a template may use to answer this ticket (see VARIABLES and the README)."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketError(f"There is no ticket with id {ticket_id}.")
    customer: Customer | None = ticket.customer
    latest = message_to_answer(session, ticket_id)
    email = (customer.email if customer else "") or (latest.from_address if latest else "")
    name = _usable_name(customer.name if customer else "") or _usable_name(latest.from_name if latest else "")
    if not name:
        name = email.split("@", 1)[0]
    previous = ""
    if latest is not None:
        previous = (latest.view_text or latest.text or "").strip()
    return {
        "customer_name": name,
        "customer_first_name": first_name(name),
        "customer_email": email,
        "ticket_number": ticket.number,
        "subject": ticket.subject,
        "agent_name": agent_name,
        "agent_first_name": first_name(agent_name),
        "previous_message": previous,
        "support_address": support_address,
        "today": _today(now, timezone),
    }


def sample_variables(
    *, now: datetime, agent_name: str = "Alex Example", support_address: str = "support@example.com"
) -> dict[str, Any]:
    """Stand-in values for previews and for checking a template before it is saved."""
    return {
        "customer_name": "Maria Rossi",
        "customer_first_name": "Maria",
        "customer_email": "maria.rossi@example.org",
        "ticket_number": 123,
        "subject": "Cannot sign in",
        "agent_name": agent_name,
        "agent_first_name": first_name(agent_name),
        "previous_message": "Hello, I can't sign in since this morning. Can you help?",
        "support_address": support_address,
        "today": now.date(),
    }


def first_name(full: str) -> str:
    full = full.strip()
    if "," in full:  # "Rossi, Maria", as company directories write names
        given = full.split(",", 1)[1].strip()
        full = given or full.split(",", 1)[0]
    words = full.split()
    return words[0] if words else ""


def _usable_name(name: str) -> str:
    name = " ".join(name.split())
    # Mail clients often put the address itself in the display name.
    return "" if "@" in name else name


def _today(now: datetime, timezone: tzinfo | None) -> date:
    return (now.astimezone(timezone) if timezone is not None else now).date()

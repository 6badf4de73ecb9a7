"""Tickets stored straight through the domain, without the bot running: a customer's mail
ingested as the mailbox watcher would, its channel post taken as delivered."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.storage.models import Ticket
from bot.tickets.ingest import ingest_email
from bot.tickets.prepared_mail import IngestResult
from tests.support.settings import CHANNEL, SUPPORT_ADDRESS


def ingest_posted(session: Session, raw: bytes, now: datetime) -> IngestResult:
    """Ingest `raw`; the ticket's channel message counts as posted, so later changes to the
    ticket are refreshes of it."""
    result = ingest_email(
        session, raw, mailbox="box", channel=CHANNEL, now=now, own_addresses=(SUPPORT_ADDRESS,)
    )
    ticket = session.get(Ticket, result.ticket_id)
    assert ticket is not None
    ticket.slack_ts = ticket.slack_ts or f"1700000000.{result.ticket_id:06d}"
    return result


def ingest_one(factory: sessionmaker[Session], raw: bytes, now: datetime) -> int:
    """`ingest_posted` in its own transaction; the ticket's id."""
    with factory.begin() as session:
        return ingest_posted(session, raw, now).ticket_id

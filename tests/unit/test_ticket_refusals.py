"""Ticket refusals carry data in the domain; the sentence, mentions and emphasis included,
is written at the Slack edge (bot/slack/errors.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.slack.errors import ticket_error_text
from bot.storage.db import transaction
from bot.storage.models import Ticket
from bot.tickets.ingest import ingest_email
from bot.tickets.status import TicketStatus
from bot.tickets.workflow import (
    AlreadyOwnedBy,
    NotYourTicket,
    SetAsideAsSpam,
    SpamIsNotAStatus,
    TicketError,
    claim_ticket,
    reassign_ticket,
    set_status,
    unclaim_ticket,
)
from tests.support.mail import customer_mail

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def new_ticket(factory: sessionmaker[Session]) -> int:
    with transaction(factory) as session:
        return ingest_email(session, customer_mail(1), mailbox="box", channel="C0SUPPORT", now=NOW).ticket_id


def refusal(factory: sessionmaker[Session], act: object) -> TicketError:
    with pytest.raises(TicketError) as info, transaction(factory) as session:
        act(session)  # type: ignore[operator]
    return info.value


def test_each_refusal_says_what_went_wrong_as_data_and_slack_words_it(
    session_factory: sessionmaker[Session],
) -> None:
    ticket_id = new_ticket(session_factory)
    with transaction(session_factory) as session:
        claim_ticket(session, ticket_id, "UADA", NOW)

    not_yours = refusal(session_factory, lambda s: unclaim_ticket(s, ticket_id, "UBOB", NOW))
    assert isinstance(not_yours, NotYourTicket) and (not_yours.owner, not_yours.action) == ("UADA", "release")
    assert (
        ticket_error_text(not_yours) == "Ticket #1 belongs to <@UADA>; only they or a manager can release it."
    )

    same = refusal(session_factory, lambda s: reassign_ticket(s, ticket_id, "UADA", "UADA", NOW))
    assert isinstance(same, AlreadyOwnedBy) and same.owner == "UADA"
    assert ticket_error_text(same) == "Ticket #1 already belongs to <@UADA>."

    as_status = refusal(session_factory, lambda s: set_status(s, ticket_id, "UADA", TicketStatus.SPAM, NOW))
    assert isinstance(as_status, SpamIsNotAStatus)
    assert (
        ticket_error_text(as_status)
        == "Use *Mark as spam* in the ticket's ⋯ menu: it also blocks the sender."
    )

    with transaction(session_factory) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.status = TicketStatus.SPAM
    aside = refusal(session_factory, lambda s: set_status(s, ticket_id, "UADA", TicketStatus.RESOLVED, NOW))
    assert isinstance(aside, SetAsideAsSpam) and aside.number == 1
    assert ticket_error_text(aside) == "Ticket #1 is marked as spam; use *Not spam* on its card first."

    # The domain's own messages are plain words: no mention, no emphasis.
    for error in (not_yours, same, as_status, aside):
        assert "<@" not in str(error) and "*" not in str(error)

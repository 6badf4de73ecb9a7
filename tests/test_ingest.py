"""Ingesting one email into the database: tickets, follow-ups, duplicates, bad mail."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.storage.models import Event, Message, OutboxItem, Ticket
from bot.tickets.ingest import ingest_email
from tests.support.mail import customer_mail, message_id_of

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CORPUS = Path(email.__file__).parent.parent / "test" / "test_email" / "data"


def ingest(session_factory, raw: bytes, uid: int | None = None):
    with session_factory.begin() as session:
        return ingest_email(
            session,
            raw,
            mailbox="box",
            channel="C0SUPPORT",
            now=NOW,
            uid=uid,
            own_addresses=("support@example.com",),
        )


def count(session_factory, model) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def test_same_mail_twice_is_stored_once(session_factory):
    mail = customer_mail(1)
    first = ingest(session_factory, mail, uid=1)
    again = ingest(session_factory, mail, uid=7)  # e.g. copied back into the folder
    assert (first.outcome, again.outcome) == ("new_ticket", "duplicate")
    assert again.ticket_id == first.ticket_id
    assert count(session_factory, Message) == 1
    assert count(session_factory, OutboxItem) == 1


def test_ticket_numbers_are_sequential_and_every_ticket_is_queued_for_slack(session_factory):
    numbers = [ingest(session_factory, customer_mail(n)).ticket_number for n in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    with session_factory() as session:
        kinds = session.scalars(select(OutboxItem.kind).order_by(OutboxItem.id)).all()
        events = session.scalars(select(Event.action)).all()
    assert kinds == ["slack.ticket_post"] * 5
    assert events == ["ticket_created"] * 5


def test_reply_threads_by_headers_and_token_only_from_people_on_the_ticket(session_factory):
    first_mail = customer_mail(1, sender="ada@example.org")
    first = ingest(session_factory, first_mail)
    by_header = ingest(
        session_factory, customer_mail(2, sender="ada@example.org", in_reply_to=message_id_of(first_mail))
    )
    by_token = ingest(session_factory, customer_mail(3, sender="ada@example.org", subject="Re: [#1] update"))
    stranger = ingest(session_factory, customer_mail(4, sender="eve@example.net", subject="[#1] let me in"))
    assert by_header.outcome == by_token.outcome == "follow_up"
    assert by_header.ticket_id == by_token.ticket_id == first.ticket_id
    assert stranger.outcome == "new_ticket" and stranger.ticket_id != first.ticket_id


def test_a_customer_reply_reopens_a_resolved_ticket(session_factory):
    first_mail = customer_mail(1)
    first = ingest(session_factory, first_mail)
    with session_factory.begin() as session:
        ticket = session.get(Ticket, first.ticket_id)
        ticket.status, ticket.owner = "resolved", "U0AGENT"
    ingest(
        session_factory,
        customer_mail(2, sender="customer1@example.org", in_reply_to=message_id_of(first_mail)),
    )
    with session_factory() as session:
        ticket = session.get(Ticket, first.ticket_id)
        assert ticket.status == "claimed" and ticket.owner == "U0AGENT"
        assert "reopened" in session.scalars(select(Event.action)).all()


def test_our_own_mail_is_recorded_but_marked(session_factory):
    result = ingest(session_factory, customer_mail(1, sender="support@example.com"))
    with session_factory() as session:
        assert session.get(Ticket, result.ticket_id).auto_reason == "own-address"


def test_unreadable_mail_is_kept_raw_and_flagged(session_factory):
    junk = b"\x00\x01 no headers here \xff"
    result = ingest(session_factory, junk)
    assert result.malformed and result.outcome == "new_ticket"
    assert ingest(session_factory, junk).outcome == "duplicate"
    with session_factory() as session:
        message = session.get(Message, result.message_id)
        assert message.raw == junk and message.parse_error
        assert session.get(Ticket, result.ticket_id).malformed


def test_the_odd_mime_corpus_never_stops_ingestion(session_factory):
    if not CORPUS.is_dir():
        pytest.skip("CPython's email test data is not installed")
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    for uid, path in enumerate(files, start=1):
        ingest(session_factory, path.read_bytes(), uid=uid)
    with session_factory() as session:
        stored = session.scalar(select(func.count()).select_from(Message))
        flagged = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.malformed))
    # Every file is stored (some corpus messages share a Message-ID on purpose).
    assert stored >= len(files) - 5
    assert flagged >= 1, "the images and sounds in the corpus are not email"

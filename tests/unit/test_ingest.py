"""Ingesting one email into the database: tickets, follow-ups, duplicates, bad mail."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Attachment, Counter, Customer, Event, Message, OutboxItem, Ticket
from bot.tickets import ingest_rows
from bot.tickets.ingest import ingest_email, store_mails, store_mails_one_by_one
from bot.tickets.prepared_mail import prepare_mail
from tests.support.mail import customer_mail, message_id_of

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
OWN = ("support@example.com",)
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
            own_addresses=OWN,
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


# -- batches -----------------------------------------------------------------------------


def store_batch(session_factory, mails: list[bytes], *, one_by_one: bool = False):
    prepared = [
        prepare_mail(raw, mailbox="box", uid=uid, own_addresses=OWN) for uid, raw in enumerate(mails, 1)
    ]
    store = store_mails_one_by_one if one_by_one else store_mails
    with session_factory.begin() as session:
        return store(session, prepared, mailbox="box", channel="C0SUPPORT", now=NOW)


def table_rows(session_factory) -> dict[str, list[tuple]]:
    with session_factory() as session:
        return {
            model.__tablename__: [
                tuple(getattr(row, column.key) for column in model.__table__.columns)
                for row in session.scalars(select(model).order_by(*model.__table__.primary_key.columns))
            ]
            for model in (Counter, Customer, Ticket, Message, Attachment, Event, OutboxItem)
        }


def test_a_batch_stores_exactly_what_one_mail_at_a_time_stores(db_factory):
    """Threading, tokens, duplicates and customers inside one batch, against the same
    mails stored one by one: the same rows, ids included."""
    earlier = customer_mail(100, sender="old@example.org")
    first = customer_mail(1, sender="ada@example.org")
    junk = b"\x00\x01 no headers here \xff"
    batch = [
        first,
        customer_mail(2, sender="ada@example.org", in_reply_to=message_id_of(first)),
        customer_mail(3, sender="ada@example.org", subject="Re: [#2] one more thing"),
        customer_mail(4, sender="eve@example.net", subject="[#2] let me in"),
        first,  # the same mail twice in one batch
        junk,
        junk,
        b"From: bob@example.org\r\nSubject: no name yet\r\nMessage-ID: <bob1@x>\r\n\r\nhi\r\n",
        customer_mail(5, sender="bob@example.org", sender_name="Bob Builder"),
        # Two answers to a resolved ticket: reopened once, refreshed once.
        customer_mail(6, sender="old@example.org", in_reply_to=message_id_of(earlier)),
        customer_mail(7, sender="old@example.org", in_reply_to=message_id_of(earlier)),
        earlier,  # already stored before the batch
    ]
    outcomes = {}
    for one_by_one, url in ((True, db_factory.new_url()), (False, db_factory.new_url())):
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        ingest(factory, earlier)
        with factory.begin() as session:
            ticket = session.scalars(select(Ticket)).one()
            ticket.status, ticket.owner = "resolved", "U0AGENT"
        if one_by_one:
            results = [ingest(factory, raw, uid=uid) for uid, raw in enumerate(batch, 1)]
        else:
            results = store_batch(factory, batch)
        outcomes[one_by_one] = (results, table_rows(factory))
        engine.dispose()
        db_factory.drop(url)
    (single, single_rows), (batched, batched_rows) = outcomes[True], outcomes[False]
    assert [(r.outcome, r.ticket_number, r.malformed) for r in batched] == [
        ("new_ticket", 2, False),
        ("follow_up", 2, False),
        ("follow_up", 2, False),
        ("new_ticket", 3, False),
        ("duplicate", 2, False),
        ("new_ticket", 4, True),
        ("duplicate", 4, False),
        ("new_ticket", 5, False),
        ("new_ticket", 6, False),
        ("follow_up", 1, False),
        ("follow_up", 1, False),
        ("duplicate", 1, False),
    ]
    assert batched == single
    for table, rows in single_rows.items():
        assert batched_rows[table] == rows, table
    actions = [row[3] for row in batched_rows["events"]]
    assert actions.count("reopened") == 1
    assert "Bob Builder" in [row[2] for row in batched_rows["customers"]], "a later mail names the customer"


def test_a_mail_that_cannot_be_stored_is_set_aside_and_the_rest_stored_once(session_factory, monkeypatch):
    message_row = ingest_rows.message_row

    def refuse_poison(batch, message):
        parsed = message.mail.parsed
        if parsed is not None and parsed.subject == "Poison":
            raise ValueError("the database refuses this one")
        return message_row(batch, message)

    monkeypatch.setattr(ingest_rows, "message_row", refuse_poison)
    mails = [customer_mail(n, subject="Poison" if n == 2 else f"Fine {n}") for n in range(5)]
    with pytest.raises(ValueError):
        store_batch(session_factory, mails)
    assert count(session_factory, Message) == 0, "the failed batch left nothing behind"

    results = store_batch(session_factory, mails, one_by_one=True)
    assert [(r.outcome, r.malformed) for r in results] == [("new_ticket", False)] * 2 + [
        ("new_ticket", True)
    ] + [("new_ticket", False)] * 2
    with session_factory() as session:
        kept = session.get(Message, results[2].message_id)
        assert kept.raw == mails[2] and "the database refuses this one" in kept.parse_error
        assert session.get(Ticket, results[2].ticket_id).malformed
    again = store_batch(session_factory, mails, one_by_one=True)
    assert [r.outcome for r in again] == ["duplicate"] * 5
    assert count(session_factory, Message) == count(session_factory, Ticket) == 5
    assert count(session_factory, OutboxItem) == 5


def test_text_the_database_cannot_hold_does_not_stop_the_others(session_factory):
    """PostgreSQL text cannot hold NUL, which mail bodies sometimes do."""
    nul = customer_mail(1, body="before\x00after\n")
    mails = [customer_mail(0), nul, customer_mail(2)]
    try:
        results = store_batch(session_factory, mails)
    except Exception:
        results = store_batch(session_factory, mails, one_by_one=True)
    assert [r.outcome for r in results] == ["new_ticket"] * 3
    assert [r.malformed for r in results] in ([False] * 3, [False, True, False])
    assert count(session_factory, Message) == 3


@pytest.mark.parametrize(
    ("before", "line"),
    [("waiting", "wrote again (it was waiting on them)"), ("resolved", "wrote again and reopened it")],
)
def test_one_customer_answer_is_one_timeline_entry(session_factory, before, line):
    from bot.slack.lists import timeline_blocks
    from bot.tickets.queries import timeline

    first_mail = customer_mail(1)
    first = ingest(session_factory, first_mail)
    with session_factory.begin() as session:
        session.get(Ticket, first.ticket_id).status = before
    ingest(
        session_factory,
        customer_mail(2, sender="customer1@example.org", in_reply_to=message_id_of(first_mail)),
    )
    with session_factory() as session:
        entries = timeline(session, first.ticket_number).entries
        text = "\n".join(b["text"]["text"] for b in timeline_blocks(timeline(session, first.ticket_number)))
    answers = [
        e for e in entries if e.actor == "customer:customer1@example.org" and e.action != "ticket_created"
    ]
    assert [e.action for e in answers] == ["customer_message"]
    assert text.count("customer1@example.org") == 3  # the head, the ticket opened, the one answer
    assert line in text and "customer replied" not in text

"""Retention: old resolved tickets erased in bounded batches, each a short write transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from bot.clock import FrozenClock
from bot.scheduler import ScheduledJobs
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Customer, Event, Message, OutboxItem, Ticket
from bot.storage.models_privacy import ErasedTicket
from bot.tickets.status import TicketStatus
from tests.support.erasure_scan import find_anywhere
from tests.support.settings import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
TICKETS = 10_000
RECENT = 50  # resolved, but within the retention period
OPEN_OLD = 50  # old, but never resolved: retention leaves them


def seed(factory) -> None:
    """Ten thousand old resolved tickets, each with its customer, two mails, a reply, its events
    and its Slack post; written in bulk, as years of use would have left them."""
    total = TICKETS + RECENT + OPEN_OLD
    with factory.begin() as session:
        session.execute(
            insert(Customer),
            [
                {"id": n, "email": f"old{n}@example.org", "name": f"Old Customer {n}", "created_at": OLD}
                for n in range(1, total + 1)
            ],
        )
        tickets = []
        for n in range(1, total + 1):
            recent = TICKETS < n <= TICKETS + RECENT
            still_open = n > TICKETS + RECENT
            at = NOW - timedelta(days=1) if recent else OLD
            tickets.append(
                {
                    "id": n,
                    "number": n,
                    "customer_id": n,
                    "subject": f"Old subject {n}",
                    "status": TicketStatus.OPEN if still_open else TicketStatus.RESOLVED,
                    "created_at": at,
                    "updated_at": at,
                    "resolved_at": None if still_open else at,
                    "slack_channel": "C0SUPPORT",
                    "slack_ts": f"1600000000.{n:06d}",
                }
            )
        session.execute(insert(Ticket), tickets)
        messages = []
        for n in range(1, total + 1):
            for k, direction in enumerate(("in", "in", "out")):
                messages.append(
                    {
                        "ticket_id": n,
                        "direction": direction,
                        "mailbox": "support@127.0.0.1/INBOX",
                        "dedupe_key": f"<m{n}.{k}@example.org>",
                        "message_id": f"<m{n}.{k}@example.org>",
                        "from_address": f"old{n}@example.org" if direction == "in" else "support@example.com",
                        "from_name": f"Old Customer {n}",
                        "subject": f"Old subject {n}",
                        "text": f"Secret body of ticket {n}",
                        "view_text": f"Secret body of ticket {n}",
                        "imap_uid": 3 * n + k if direction == "in" else None,
                        "author": "U0AGENT" if direction == "out" else None,
                        "sent_at": tickets[n - 1]["created_at"],
                        "created_at": tickets[n - 1]["created_at"],
                        "slack_ts": f"1600000001.{n:06d}" if k == 1 else None,
                    }
                )
        session.execute(insert(Message), messages)
        session.execute(
            insert(Event),
            [
                {
                    "ticket_id": n,
                    "actor": f"customer:old{n}@example.org",
                    "action": "ticket_created",
                    "at": OLD,
                    "data": {},
                }
                for n in range(1, total + 1)
            ]
            + [
                {
                    "ticket_id": n,
                    "actor": "U0AGENT",
                    "action": "resolved",
                    "at": OLD,
                    "data": {"previous": "claimed"},
                }
                for n in range(1, TICKETS + 1)
            ],
        )


def test_retention_erases_ten_thousand_tickets_in_short_batches(database_url):
    factory = make_sessionmaker(make_engine(database_url))
    seed(factory)
    settings = make_settings(database_url, RETENTION_DAYS="365")
    jobs = ScheduledJobs(factory, FrozenClock(NOW), settings)
    batches: list[float] = []
    erased = 0
    for _ in range(10):
        run = jobs.apply_retention()
        batches += run.batch_seconds
        erased += run.tickets
        if run.tickets == 0:
            break
    assert erased == TICKETS
    # On SQLite a write transaction holds the database's one write lock from its first write
    # to its commit: each batch is one transaction, so none held it for a second.
    assert max(batches) < 1.0, f"slowest batch {max(batches):.3f}s"
    assert len(batches) >= TICKETS // settings.privacy.retention_batch
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(ErasedTicket)) == TICKETS
        kept = session.scalars(
            select(Ticket.id).where(Ticket.id.not_in(select(ErasedTicket.ticket_id)))
        ).all()
        assert sorted(kept) == list(range(TICKETS + 1, TICKETS + RECENT + OPEN_OLD + 1))
        assert session.scalar(select(func.count()).select_from(Customer)) == RECENT + OPEN_OLD
        # Anonymous figures stay: every erased ticket still counts as resolved, by whom.
        resolved = select(func.count()).where(Event.action == "resolved", Event.actor == "U0AGENT")
        assert session.scalar(resolved) == TICKETS
        edits = select(func.count()).where(OutboxItem.kind == "slack.erase_message")
        assert session.scalar(edits) == 2 * TICKETS
    needles = ["Old subject 7", "old7@example.org", "Old Customer 9999", "Secret body of ticket 5000"]
    assert find_anywhere(factory.kw["bind"], needles) == []
    assert jobs.apply_retention().tickets == 0

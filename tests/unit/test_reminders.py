"""Unclaimed tickets are nudged after business minutes, repeatedly, until someone claims them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.business_hours import BusinessCalendar
from bot.storage.models import OutboxItem, Ticket
from bot.tickets.ingest import ingest_email
from bot.tickets.reminders import nudge_unclaimed
from bot.tickets.workflow import claim_ticket
from tests.support.mail import customer_mail

ROME = ZoneInfo("Europe/Rome")
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")


def rome(*args: int) -> datetime:
    return datetime(*args, tzinfo=ROME).astimezone(UTC)


def test_nudges_count_business_minutes_repeat_and_stop_once_claimed(session_factory) -> None:
    friday_evening = rome(2026, 11, 20, 17, 50)
    with session_factory.begin() as session:
        result = ingest_email(
            session, customer_mail(1), mailbox="box", channel="C0SUPPORT", now=friday_evening
        )
        ticket = session.get(Ticket, result.ticket_id)
        ticket.slack_ts = "1700000000.000100"  # posted

    def nudge(at: datetime) -> list[int]:
        with session_factory.begin() as session:
            return nudge_unclaimed(session, CALENDAR, nudge_minutes=30, now=at)

    assert nudge(rome(2026, 11, 20, 23, 0)) == [], "ten business minutes by Friday night"
    assert nudge(rome(2026, 11, 23, 9, 10)) == [], "thirty minutes only on Monday at 09:20"
    assert nudge(rome(2026, 11, 23, 9, 25)) == [1]
    assert nudge(rome(2026, 11, 23, 9, 40)) == [], "the next nudge waits another thirty minutes"
    assert nudge(rome(2026, 11, 23, 9, 56)) == [1]
    with session_factory.begin() as session:
        claim_ticket(session, result.ticket_id, "U0ADA", rome(2026, 11, 23, 10, 0))
    assert nudge(rome(2026, 11, 23, 12, 0)) == []

    with session_factory() as session:
        posts = session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.post")).all()
    assert len(posts) == 2
    assert posts[0].payload["thread_ts"] == "1700000000.000100"
    assert "still unclaimed" in posts[0].payload["text"]


def test_no_nudge_for_auto_replies_or_before_the_post(session_factory) -> None:
    start = rome(2026, 11, 23, 9, 0)
    with session_factory.begin() as session:
        ingest_email(
            session,
            customer_mail(1, headers={"Auto-Submitted": "auto-replied"}),
            mailbox="box",
            channel="C0SUPPORT",
            now=start,
        )
        ingest_email(session, customer_mail(2), mailbox="box", channel="C0SUPPORT", now=start)
        for ticket in session.scalars(select(Ticket).where(Ticket.number == 1)):
            ticket.slack_ts = "1700000000.000100"
    with session_factory.begin() as session:
        assert nudge_unclaimed(session, CALENDAR, nudge_minutes=30, now=start + timedelta(hours=3)) == []

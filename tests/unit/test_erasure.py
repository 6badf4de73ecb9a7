"""Erasing a customer from the database: nothing of them left, the anonymous figures kept."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox.queue import IMAP_ERASE, SLACK_DELETE_FILE, SLACK_ERASE_MESSAGE
from bot.privacy.erasure import NothingToErase, erasure_preview, start_erasure, sweep_late_effects
from bot.privacy.erasure_effects import finish_erasures
from bot.storage.models import (
    Attachment,
    AutoReply,
    BlockedSender,
    Customer,
    Event,
    LedgerLine,
    MailboxCheckpoint,
    Message,
    OutboxItem,
    Page,
    PageAttempt,
    Survey,
    Ticket,
)
from bot.storage.models_privacy import Erasure
from bot.tickets.ingest import ingest_email
from bot.tickets.survey_answers import record_answer
from tests.support.erased_customer import (
    ADDRESS,
    BASE,
    COMMENT,
    NAME,
    NEEDLES,
    PHRASE,
    SUBJECTS,
    anonymous_figures,
    answered_survey,
    her_mail,
    reply_tag_and_resolve,
)
from tests.support.erasure_scan import find_anywhere
from tests.support.settings import CHANNEL, SUPPORT_ADDRESS, make_settings

NOW = BASE


def mail(n: int, subject: str, *, reply_to: str | None = None, attach: bool = False) -> bytes:
    return her_mail(n, subject, reply_to=reply_to, attach=attach)


RAWS: list[bytes] = []
PAGE_TS = "1700000002.000001"


def seed_customer(factory: sessionmaker[Session], database_url: str) -> list[int]:
    """Three tickets with follow-ups, replies, tags, an attachment in Slack, a survey answer with
    a comment, an automatic reply, a block; plus another customer who must stay untouched."""
    settings = make_settings(database_url)
    tickets = []
    RAWS.clear()
    with factory.begin() as session:
        session.add(MailboxCheckpoint(mailbox="box", uidvalidity=7, last_uid=0, updated_at=NOW))
        for n, subject in enumerate(SUBJECTS):
            first = mail(10 * n, subject, attach=n == 0)
            RAWS.append(first)
            result = ingest_email(session, first, mailbox="box", channel=CHANNEL, now=NOW, uid=10 * n + 1)
            msg_id = session.get(Message, result.message_id).message_id
            RAWS.append(mail(10 * n + 1, subject, reply_to=msg_id))
            ingest_email(
                session,
                RAWS[-1],
                mailbox="box",
                channel=CHANNEL,
                now=NOW + timedelta(minutes=5),
                uid=10 * n + 2,
            )
            ticket = session.get(Ticket, result.ticket_id)
            ticket.slack_ts = f"1700000000.{result.ticket_id:06d}"
            ticket.slack_channel = CHANNEL
            tickets.append(result.ticket_id)
        session.flush()
        for ticket_id in tickets:
            reply_tag_and_resolve(
                session,
                ticket_id,
                text=f"Gentile {NAME}, abbiamo risolto.",
                settings=settings,
                replied_at=NOW + timedelta(minutes=30),
                tagged_at=NOW + timedelta(minutes=31),
                resolved_at=NOW + timedelta(hours=1),
            )
        for message in session.scalars(select(Message).where(Message.ticket_id.in_(tickets))):
            message.slack_ts = f"1700000001.{message.id:06d}"
        for attachment in session.scalars(select(Attachment)):
            attachment.slack_file_id = f"F{attachment.id:07d}"
        session.add(
            answered_survey(
                tickets[0],
                resolved_at=NOW + timedelta(hours=1),
                sent_at=NOW + timedelta(hours=2),
                solved=False,
                answered_at=NOW + timedelta(hours=3),
            )
        )
        session.add(AutoReply(ticket_id=tickets[1], address=ADDRESS, kind="ack", sent_at=NOW))
        # She wrote at night: the person on call was paged, by a DM showing her subject.
        page = Page(
            ticket_id=tickets[2], status="acknowledged", step=1, started_at=NOW, acknowledged_by="U0ADA"
        )
        session.add(page)
        session.flush()
        session.add(PageAttempt(page_id=page.id, step=1, level="oncall", user_id="U0ADA", at=NOW))
        session.add(
            OutboxItem(
                kind="slack.page",
                lane="slack:U0ADA",
                ticket_id=tickets[2],
                payload={"channel": "U0ADA", "text": f"Urgent: {SUBJECTS[2]} from {NAME}", "user": "U0ADA"},
                status="done",
                attempts=1,
                next_attempt_at=NOW,
                created_at=NOW,
                delivered_at=NOW,
                result={"channel": "D0ADA", "ts": PAGE_TS, "dnd": False},
            )
        )
        session.add(
            BlockedSender(
                kind="address", value=ADDRESS, blocked_by="U0MANAGER", blocked_at=NOW, ticket_id=None
            )
        )
        session.add(
            Event(
                ticket_id=None, actor="U0MANAGER", action="sender_blocked", at=NOW, data={"address": ADDRESS}
            )
        )
        # Someone else's ticket, which must not be touched.
        other = EmailMessage()
        other["From"] = "Luca Bianchi <luca@example.net>"
        other["To"] = SUPPORT_ADDRESS
        other["Subject"] = "Altro problema"
        other["Message-ID"] = make_msgid("luca", domain="example.net")
        other.set_content("Ciao")
        ingest_email(session, bytes(other), mailbox="box", channel=CHANNEL, now=NOW, uid=99)
    return tickets


def test_erasing_a_customer_leaves_nothing_of_them_and_keeps_the_anonymous_figures(
    session_factory, database_url
):
    tickets = seed_customer(session_factory, database_url)
    before = anonymous_figures(session_factory, NOW)
    assert find_anywhere(session_factory.kw["bind"], NEEDLES)  # the scan does see them before

    with session_factory.begin() as session:
        preview = erasure_preview(session, ADDRESS.upper())
        started = start_erasure(session, ADDRESS, by="U0MANAGER", now=NOW + timedelta(days=2))

    assert (preview.tickets, preview.messages, preview.attachments) == (3, 9, 1)
    assert (preview.surveys, preview.auto_replies, preview.blocks, preview.files) == (1, 1, 1, 1)
    assert preview.slack_posts == 3 + 9 + 1  # cards, thread posts, the page DM
    assert started.effects == preview.slack_posts + preview.files + 1 and not started.already_running
    assert find_anywhere(session_factory.kw["bind"], NEEDLES) == []
    assert anonymous_figures(session_factory, NOW) == before
    with session_factory() as session:
        kinds = session.execute(
            select(OutboxItem.kind, func.count())
            .where(OutboxItem.status == "pending")
            .group_by(OutboxItem.kind)
        ).all()
        assert dict(kinds) == {
            SLACK_ERASE_MESSAGE: 13,
            SLACK_DELETE_FILE: 1,
            IMAP_ERASE: 1,
            "slack.ticket_post": 1,
        }
        edits = session.scalars(select(OutboxItem.payload).where(OutboxItem.kind == SLACK_ERASE_MESSAGE))
        assert {"channel": "D0ADA", "ts": PAGE_TS} in [{k: p[k] for k in ("channel", "ts")} for p in edits]
        imap = session.scalar(select(OutboxItem).where(OutboxItem.kind == IMAP_ERASE))
        assert imap.payload["uids"] == [1, 2, 11, 12, 21, 22] and imap.payload["uidvalidity"] == 7
        # The other customer's ticket post is still on its way; the erased ones' are cancelled.
        assert session.scalar(select(func.count()).where(OutboxItem.status == "cancelled")) >= 3
        waiting = select(func.count()).where(
            OutboxItem.ticket_id.in_(tickets), OutboxItem.status == "pending"
        )
        assert session.scalar(waiting) == 0
        erasure = session.get(Erasure, started.erasure_id)
        assert (erasure.by, erasure.state, erasure.tickets) == ("U0MANAGER", "running", 3)
        audit = session.scalar(select(Event).where(Event.action == "customer_erased"))
        assert audit.actor == "U0MANAGER" and audit.data["address_hash"] == started.address_hash
        assert session.scalar(select(func.count()).select_from(Customer)) == 1  # Luca's
        assert {t.subject for t in session.scalars(select(Ticket).where(Ticket.id.in_(tickets)))} == {""}
    with session_factory.begin() as session:
        # The survey links in her mail still work for days: an answer through one changes nothing.
        survey_id = session.scalar(select(Survey.id))
        again = record_answer(
            session, survey_id, solved=True, comment=COMMENT, now=NOW, write_notice=lambda notice: ""
        )
        assert again is None
    assert find_anywhere(session_factory.kw["bind"], NEEDLES) == []


def test_an_erasure_runs_once_per_address_and_finishes_when_its_effects_are_done(
    session_factory, database_url
):
    seed_customer(session_factory, database_url)
    with session_factory.begin() as session:
        first = start_erasure(session, ADDRESS, by="U0MANAGER", now=NOW)
    with session_factory.begin() as session:
        again = start_erasure(session, ADDRESS, by="U0OTHER", now=NOW)
    assert again.already_running and again.erasure_id == first.erasure_id
    with session_factory.begin() as session:
        for row in session.scalars(select(OutboxItem).where(OutboxItem.dedupe_key.like("erase:%"))):
            row.status = "done"
        assert finish_erasures(session, NOW) == [first.erasure_id]
    with session_factory.begin() as session, pytest.raises(NothingToErase):
        start_erasure(session, ADDRESS, by="U0MANAGER", now=NOW)


def test_nothing_to_erase_for_an_unknown_address(session_factory):
    with session_factory() as session, pytest.raises(NothingToErase):
        erasure_preview(session, "nobody@example.org")


def test_erased_mail_read_again_is_not_stored_but_new_mail_makes_a_new_customer(
    session_factory, database_url
):
    seed_customer(session_factory, database_url)
    with session_factory.begin() as session:
        start_erasure(session, ADDRESS, by="U0MANAGER", now=NOW)
        tickets_before = session.scalar(select(func.count()).select_from(Ticket))
    # The erased mails read again, as a re-scan after a UIDVALIDITY change reads them.
    with session_factory.begin() as session:
        again = [
            ingest_email(session, raw, mailbox="box", channel=CHANNEL, now=NOW, uid=900 + i)
            for i, raw in enumerate(RAWS)
        ]
    assert {r.outcome for r in again} == {"duplicate"}
    assert find_anywhere(session_factory.kw["bind"], NEEDLES) == []
    with session_factory.begin() as session:
        fresh = ingest_email(
            session, mail(77, "Nuova domanda"), mailbox="box", channel=CHANNEL, now=NOW, uid=950
        )
    assert fresh.outcome == "new_ticket"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == tickets_before + 1
        assert session.scalar(select(Customer.name).where(Customer.email == ADDRESS)) == NAME


def test_without_keeping_stats_her_tickets_go_and_a_paid_page_stays_emptied(session_factory, database_url):
    tickets = seed_customer(session_factory, database_url)
    with session_factory.begin() as session:
        page_id = session.scalar(select(Page.id))
        session.add(
            LedgerLine(
                user_id="U0ADA",
                kind="earned",
                amount=Decimal("0.5"),
                unit="days",
                at=NOW,
                page_id=page_id,
                created_by="system",
                created_at=NOW,
            )
        )
    with session_factory.begin() as session:
        start_erasure(session, ADDRESS, by="U0MANAGER", now=NOW, keep_stats=False)
    assert find_anywhere(session_factory.kw["bind"], NEEDLES) == []
    with session_factory() as session:
        # The page that earned night pay keeps its ticket, emptied; the two others are gone.
        assert session.scalars(select(Ticket.id).where(Ticket.id.in_(tickets))).all() == [tickets[2]]
        assert (
            session.scalar(select(func.count()).select_from(Message).where(Message.ticket_id.in_(tickets)))
            == 0
        )
        assert session.scalar(select(func.count()).select_from(LedgerLine)) == 1


def test_a_post_that_lands_after_the_erasure_is_erased_too(session_factory, database_url):
    tickets = seed_customer(session_factory, database_url)
    with session_factory.begin() as session:
        # Her ticket's thread post was being delivered when the erasure committed.
        in_flight = session.scalar(
            select(OutboxItem).where(OutboxItem.ticket_id == tickets[1], OutboxItem.status == "pending")
        )
        in_flight.attempts = 1
        in_flight_id = in_flight.id
        started = start_erasure(session, ADDRESS, by="U0MANAGER", now=NOW)
    with session_factory.begin() as session:
        # The worker then records it as delivered, as it does for any try that got through.
        row = session.get(OutboxItem, in_flight_id)
        row.status, row.result = "done", {"channel": CHANNEL, "ts": "1700000009.000001"}
        session.get(Ticket, tickets[1]).slack_ts = "1700000009.000002"
        session.get(Ticket, tickets[1]).slack_channel = CHANNEL
    with session_factory.begin() as session:
        assert sweep_late_effects(session, NOW) == 2
    with session_factory.begin() as session:
        assert sweep_late_effects(session, NOW) == 0
        late = session.scalars(
            select(OutboxItem.payload).where(
                OutboxItem.kind == SLACK_ERASE_MESSAGE,
                OutboxItem.payload["ts"].as_string().like("1700000009%"),
            )
        ).all()
        assert sorted((p["ts"], p["card"], p["erasure_id"]) for p in late) == [
            ("1700000009.000001", False, started.erasure_id),
            ("1700000009.000002", True, started.erasure_id),
        ]
        assert session.get(OutboxItem, in_flight_id).result == {}


def test_a_mail_without_message_id_is_known_again_by_its_sender_and_date(session_factory):
    raw = b"\r\n".join(
        [
            f'From: "{NAME}" <{ADDRESS}>'.encode(),
            b"To: support@example.com",
            f"Subject: {SUBJECTS[0]}".encode(),
            b"Date: Fri, 20 Nov 2026 10:00:00 +0100",
            b"",
            PHRASE.encode(),
        ]
    )
    with session_factory.begin() as session:
        first = ingest_email(session, raw, mailbox="box", channel=CHANNEL, now=NOW, uid=1)
        assert session.get(Message, first.message_id).message_id is None
    with session_factory.begin() as session:
        start_erasure(session, ADDRESS, by="U0MANAGER", now=NOW)
    with session_factory.begin() as session:
        again = ingest_email(session, raw, mailbox="box", channel=CHANNEL, now=NOW, uid=2)
    assert again.outcome == "duplicate"
    assert find_anywhere(session_factory.kw["bind"], NEEDLES) == []

"""Erasing a customer end to end: the database, Slack, the mailbox and the mail we send.

The bot runs for real against the stand-ins (IMAP, Slack, SMTP); the erasure is started
through the use case the Slack command calls, and finishes through the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.mail.erase import ERASED_KEYWORD
from bot.outbox.queue import notify_workers
from bot.privacy.erasure import start_erasure
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import AutoReply, Customer, MailboxCheckpoint, Message, OutboxItem, Ticket
from bot.storage.models_privacy import Erasure
from bot.tickets.replies import send_reply
from tests.support.erased_customer import (
    ADDRESS,
    NAME,
    NEEDLES,
    SUBJECTS,
    anonymous_figures,
    answered_survey,
    her_mail,
    message_id,
    reply_tag_and_resolve,
)
from tests.support.erasure_checks import mail_mentions, slack_mentions
from tests.support.erasure_scan import find_anywhere
from tests.support.harness import CHANNEL, BotProcess, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.settings import make_settings

pytestmark = pytest.mark.timeout(240)


def her_mails() -> list[bytes]:
    """Three tickets, each with a follow-up; the first with a PDF attached."""
    mails = []
    for n, subject in enumerate(SUBJECTS):
        first = her_mail(10 * n, subject, attach=n == 0)
        mails += [first, her_mail(10 * n + 1, subject, reply_to=message_id(first))]
    return mails


def other_mail() -> bytes:
    return customer_mail(99, subject="Altro problema", sender="luca@example.net", sender_name="Luca B")


def stored(factory, what):
    with factory() as session:
        return session.scalar(what)


def her_tickets(factory) -> list[int]:
    with factory() as session:
        return list(
            session.scalars(
                select(Ticket.id).join(Customer).where(Customer.email == ADDRESS).order_by(Ticket.id)
            )
        )


def work_on_her_tickets(factory, database_url: str, now: datetime) -> None:
    """Replies, tags, resolution, a survey answered with a comment, an automatic reply."""
    settings = make_settings(database_url)
    tickets = her_tickets(factory)
    with factory.begin() as session:
        for ticket_id in tickets:
            reply_tag_and_resolve(
                session,
                ticket_id,
                text=f"Gentile {NAME}, fatto.",
                settings=settings,
                replied_at=now,
                tagged_at=now,
                resolved_at=now + timedelta(minutes=1),
            )
        session.add(
            answered_survey(
                tickets[0], resolved_at=now, sent_at=now, solved=True, answered_at=now + timedelta(minutes=2)
            )
        )
        session.add(AutoReply(ticket_id=tickets[1], address=ADDRESS, kind="ack", sent_at=now))
    notify_workers()


def allow_keyword(imap) -> None:
    """pymap keeps only the keywords its maildir lists (Dovecot's file format); Dovecot
    itself, and most servers, take any keyword (PERMANENTFLAGS \\*)."""
    for uidlist in imap.maildir.rglob("dovecot-uidlist"):
        (uidlist.parent / "dovecot-keywords").write_text(f"0 {ERASED_KEYWORD.decode()}\n")


def erasure_finished(factory) -> bool:
    return stored(factory, select(func.count()).where(Erasure.state == "finished")) == 1


def assert_nothing_of_her(factory, slack, smtp_mails) -> None:
    assert find_anywhere(factory.kw["bind"], NEEDLES) == []
    assert slack_mentions(slack, NEEDLES) == []
    assert mail_mentions(smtp_mails, NEEDLES) == []


def test_erasing_a_customer_reaches_the_database_slack_the_mailbox_and_stays_erased(
    imap, slack, database_url
):
    now = datetime.now(UTC)
    factory = make_sessionmaker(make_engine(database_url))
    mails = her_mails()
    with SmtpCatcher() as smtp:
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=database_url,
            smtp_port=smtp.port,
            ERASE_FROM_MAILBOX="false",
        )
        uids = imap.append_many([*mails, other_mail()])
        allow_keyword(imap)
        with running_bot(env):
            wait_until(lambda: len(slack.shared_files(CHANNEL)) == 1, timeout=30, what="the PDF in Slack")
            wait_until(
                lambda: (
                    stored(factory, select(func.count()).where(Ticket.slack_ts.is_not(None))) == 4
                    and stored(factory, select(func.count()).where(Message.slack_ts.is_not(None))) == 3
                ),
                timeout=30,
                what="every mail shown in Slack",
            )
            work_on_her_tickets(factory, database_url, now)
            wait_until(lambda: len(smtp.mails) == 3, timeout=30, what="the three replies")
            sent_before = len(smtp.mails)
            # A reply still waiting in the outbox (the server greylists it) carries her words:
            # the erasure cancels it, and it never leaves.
            smtp.refuse_rcpt = "451 4.7.1 Greylisted"
            with factory.begin() as session:
                send_reply(
                    session,
                    ticket_id=her_tickets(factory)[0],
                    agent_id="U0AGENT",
                    agent_name="Agent",
                    text=f"Ancora una cosa, {NAME}",
                    now=now,
                    settings=make_settings(database_url),
                )
            before = anonymous_figures(factory, now)
            with factory.begin() as session:
                started = start_erasure(session, ADDRESS, by="U0MANAGER", now=now)
            smtp.refuse_rcpt = None
            notify_workers()
            assert started.preview.tickets == 3 and started.preview.files == 1
            wait_until(lambda: erasure_finished(factory), timeout=30, what="the erasure to finish")
            # The replies she had before are in her mailbox, not ours: nothing was sent since.
            assert_nothing_of_her(factory, slack, smtp.mails[sent_before:])
            assert anonymous_figures(factory, now) == before
            for uid in uids[: len(mails)]:
                assert ERASED_KEYWORD in imap.flags(uid)
            assert ERASED_KEYWORD not in imap.flags(uids[-1])
            tickets = stored(factory, select(func.count()).select_from(Ticket))

        # The server renumbers the mailbox: her old mail comes back under new UIDs.
        imap.reset_uidvalidity()
        with running_bot(env):
            wait_until(
                lambda: (
                    stored(factory, select(MailboxCheckpoint.uidvalidity)) == imap.uidvalidity()
                    and stored(factory, select(MailboxCheckpoint.last_uid)) >= len(mails) + 1
                ),
                timeout=30,
                what="the re-scan",
            )
        assert stored(factory, select(func.count()).select_from(Ticket)) == tickets
        assert_nothing_of_her(factory, slack, smtp.mails[sent_before:])


def erase_effects_done(factory) -> int:
    return stored(
        factory,
        select(func.count()).where(OutboxItem.dedupe_key.like("erase:%"), OutboxItem.status == "done"),
    )


def test_sigkill_during_an_erasure_then_restart_finishes_it_and_nothing_comes_back(
    imap, slack, database_url, tmp_path
):
    factory = make_sessionmaker(make_engine(database_url))
    mails = her_mails()
    imap.append_many(mails)
    allow_keyword(imap)
    with SmtpCatcher() as smtp:
        env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, smtp_port=smtp.port)
        first = BotProcess(env, tmp_path, name="first")
        first.start()
        try:
            wait_until(lambda: len(slack.shared_files(CHANNEL)) == 1, timeout=60, what="the PDF in Slack")
            wait_until(
                lambda: stored(factory, select(func.count()).where(Message.slack_ts.is_not(None))) == 3,
                timeout=30,
                what="the follow-ups in Slack",
            )
            # Slack answers slowly, so the erasure's Slack edits take seconds: the kill lands among them.
            slack.latency = 0.3
            with factory.begin() as session:
                started = start_erasure(session, ADDRESS, by="U0MANAGER", now=datetime.now(UTC))
            assert started.effects > 5
            wait_until(lambda: erase_effects_done(factory) >= 1, timeout=30, what="the first erasing edit")
            first.kill()
        finally:
            first.kill()
        assert erase_effects_done(factory) < started.effects, "killed too late to prove anything"
        slack.latency = 0.0
        with BotProcess(env, tmp_path, name="second") as second:
            wait_until(second.is_leader, timeout=30, what="the second bot to lead")
            wait_until(lambda: erasure_finished(factory), timeout=60, what="the erasure to finish")
            assert_nothing_of_her(factory, slack, smtp.mails)
            tickets = stored(factory, select(func.count()).select_from(Ticket))
        imap.reset_uidvalidity()
        with BotProcess(env, tmp_path, name="third") as third:
            wait_until(third.is_leader, timeout=30, what="the third bot to lead")
            wait_until(
                lambda: (
                    stored(factory, select(MailboxCheckpoint.uidvalidity)) == imap.uidvalidity()
                    and stored(factory, select(MailboxCheckpoint.last_uid)) >= len(mails)
                ),
                timeout=30,
                what="the re-scan",
            )
        assert stored(factory, select(func.count()).select_from(Ticket)) == tickets
        assert_nothing_of_her(factory, slack, smtp.mails)


def test_erase_from_mailbox_deletes_her_mail_found_by_hash_after_a_renumbering(imap, slack, database_url):
    factory = make_sessionmaker(make_engine(database_url))
    mails = her_mails()
    imap.append_many([*mails, other_mail()])
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, ERASE_FROM_MAILBOX="true")
    with running_bot(env):
        wait_until(
            lambda: stored(factory, select(func.count()).where(Ticket.slack_ts.is_not(None))) == 4,
            timeout=30,
            what="the four tickets in Slack",
        )
    # Renumbered while no bot ran: the UIDs the erasure knows are stale, the hashes are not.
    imap.reset_uidvalidity()
    with factory.begin() as session:
        start_erasure(session, ADDRESS, by="U0MANAGER", now=datetime.now(UTC))
    with running_bot(env):
        wait_until(lambda: erasure_finished(factory), timeout=30, what="the erasure to finish")
        assert imap.count() == 1  # only Luca's mail is left
        wait_until(
            lambda: stored(factory, select(MailboxCheckpoint.uidvalidity)) == imap.uidvalidity(),
            what="the re-scan",
        )
    # Seen once in a full SQLite run: 5. Which ticket came back says which check let it in.
    with factory() as session:
        tickets = session.execute(select(Ticket.id, Ticket.subject, Ticket.created_at)).all()
        messages = session.execute(
            select(Message.ticket_id, Message.from_address, Message.message_id, Message.imap_uid)
        ).all()
    assert len(tickets) == 4, "\n".join(str(row) for row in [*tickets, *messages])
    assert find_anywhere(factory.kw["bind"], NEEDLES) == []

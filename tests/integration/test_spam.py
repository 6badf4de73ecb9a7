"""Spam, end to end: mail in through IMAP, signed requests into the bot's endpoint, the
Slack stand-in, SMTP out. Marking a ticket as spam collapses its card, blocks its sender
and takes it out of every queue, page, survey and figure; the sender's next mail is kept
but shown to nobody; Not spam undoes all of it; managers block whole domains."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.business_hours import BusinessCalendar
from bot.clock import FrozenClock
from bot.outbox.queue import SLACK_ATTACHMENT_UPLOAD
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack import stats as stats_ui
from bot.stats.period import Period
from bot.stats.report import StatsConfig, build_report
from bot.storage.db import transaction
from bot.storage.models import (
    BlockedSender,
    Event,
    Message,
    OutboxItem,
    Page,
    Survey,
    TicketTriage,
)
from bot.tickets import spam
from bot.tickets.ingest import ingest_email
from bot.tickets.replies import send_reply
from bot.tickets.workflow import resolve_ticket
from rota.load import LoadWeights
from tests.support import desk as support_desk
from tests.support.desk import add_people, running_desk
from tests.support.harness import CHANNEL, SUPPORT_ADDRESS, wait_until
from tests.support.mail import customer_mail, message_id_of
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(240)

ADA, BOB, MAY = "U0ADA", "U0BOB", "U0MAY"  # staff, staff, manager
NIGHT = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # Monday 22:00 in Rome: after hours
SPAMMER = "deals@junk.example"


class Desk(support_desk.Desk):
    clock: FrozenClock

    def told(self, user: str, text: str) -> str:
        return str(
            wait_until(
                lambda: next((e["text"] for e in self.slack.ephemerals(user) if text in e["text"]), None),
                what=f"“{text}” told to {user}",
            )
        )

    def updates_of(self, number: int) -> list[str]:
        ts = wait_until(lambda: self.posted(number), what=f"ticket #{number}")["ts"]
        return [
            json.dumps(c.args.get("blocks"), ensure_ascii=False)
            for c in self.slack.calls("chat.update")
            if c.args.get("ts") == ts
        ]


@pytest.fixture
def desk(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[Desk]:
    add_people(slack, {ADA: "ada", BOB: "bob", MAY: "may"})
    with running_desk(
        slack,
        imap,
        database_url,
        clock=FrozenClock(NIGHT),
        kind=Desk,
        MANAGERS=MAY,
        AUTO_ACK="true",
        SURVEY_DELAY_MINUTES="60",
    ) as running:
        yield running


def mail_with_attachment(n: int, sender: str, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Deals <{sender}>"
    msg["To"] = SUPPORT_ADDRESS
    msg["Subject"] = subject
    msg["Date"] = format_datetime(NIGHT)
    msg["Message-ID"] = make_msgid(f"att{n}", domain="junk.example")
    msg.set_content("Open the attached invoice.\n")
    msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="invoice.pdf")
    return bytes(msg)


def list_blocks(desk: Desk, user: str) -> list[dict[str, Any]]:
    answer = desk.user(user).command("spam")
    assert answer.status == 200
    return list(answer.json()["blocks"])


def open_queue(desk: Desk) -> str:
    answer = desk.user(ADA).command("open")
    return json.dumps(answer.json().get("blocks"), ensure_ascii=False)


def test_spam_is_set_aside_blocked_kept_quiet_and_brought_back(desk: Desk) -> None:
    assert "urgent" in desk.user(MAY).command("rules add keyword outage urgent").json()["text"].lower()

    # 1. Urgent-looking mail at night: posted, and the managers are paged (nobody is on the rota).
    first = customer_mail(1, sender=SPAMMER, sender_name="Deals <!channel>", subject="Total outage of prices")
    desk.imap.append(first)
    card = desk.card(1)
    wait_until(lambda: desk.slack.dms(MAY), what="the page to the manager")
    assert "#1" in open_queue(desk)

    # 2. Bob marks it as spam from the ⋯ menu.
    assert desk.user(BOB).click(card, "ticket_more", option="spam").status == 200
    desk.told(BOB, "Ticket #1 is marked as spam")
    collapsed = wait_until(
        lambda: next((u for u in desk.updates_of(1) if "Spam from" in u), None), what="the collapsed card"
    )
    assert f"Spam from {SPAMMER}, marked by <@{BOB}>" in collapsed
    assert "ticket_not_spam" in collapsed and "ticket_claim" not in collapsed
    ticket = desk.ticket(1)
    assert ticket is not None and ticket.status == "spam"
    assert desk.count(BlockedSender, BlockedSender.value == SPAMMER, BlockedSender.blocked_by == BOB) == 1
    assert desk.count(Event, Event.action == "marked_spam", Event.actor == BOB) == 1
    assert desk.count(Event, Event.action == "sender_blocked", Event.actor == BOB) == 1
    # The page stops at once, and whoever it woke is stood down.
    assert desk.count(Page, Page.status == "cancelled") == 1
    wait_until(
        lambda: any("you can stand down" in str(m.get("text")) for m in desk.slack.dms(MAY)),
        what="the stand-down DM",
    )
    desk.settle()
    assert "#1" not in open_queue(desk)

    # 3. The blocked sender writes again: an urgent one with an attachment, a plain one (which
    # after hours would be acknowledged), and a reply on the spam ticket. All stored, none shown.
    posts_before = len(desk.slack.calls("chat.postMessage"))
    desk.imap.append(mail_with_attachment(2, SPAMMER, "Outage! Invoice attached"))
    desk.imap.append(customer_mail(3, sender=SPAMMER.upper(), subject="Hello friend"))
    desk.imap.append(
        customer_mail(
            4, sender=SPAMMER, subject="Re: Total outage of prices", in_reply_to=message_id_of(first)
        )
    )
    wait_until(
        lambda: desk.count(Message, Message.direction == "in") == 4, what="the three mails to be stored"
    )
    wait_until(lambda: desk.count(TicketTriage) == 3, what="triage of the new tickets")
    desk.settle()
    assert [desk.ticket(n).status for n in (2, 3)] == ["spam", "spam"]  # type: ignore[union-attr]
    assert desk.posted(2) is None and desk.posted(3) is None
    assert len(desk.slack.calls("chat.postMessage")) == posts_before  # no card, no thread post, no page
    assert desk.count(OutboxItem, OutboxItem.kind == SLACK_ATTACHMENT_UPLOAD) == 0
    assert desk.count(Page) == 1
    assert desk.smtp.mails == []  # never acknowledged
    with desk.bot.factory() as session:
        triaged = session.scalars(select(TicketTriage).order_by(TicketTriage.ticket_id)).all()
        assert [(t.urgent, t.auto_reply) for t in triaged[1:]] == [(False, None), (False, None)]

    # 4. `/support spam`: newest first, with the sender and who set each aside; the blocked list.
    blocks = list_blocks(desk, ADA)
    rows = [b["text"]["text"] for b in blocks if b.get("accessory", {}).get("action_id") == "ticket_not_spam"]
    assert [r.split()[0] for r in rows] == ["#3", "#2", "#1"]
    assert all(SPAMMER in r.lower() for r in rows)
    assert f"marked by <@{BOB}>" in rows[-1] and "sender blocked" in rows[0]
    assert any(
        SPAMMER in b.get("text", {}).get("text", "") and "from #1" in b["text"]["text"] for b in blocks
    )

    # 5. Not spam on the collapsed card: back to open, card restored, follow-up in the thread,
    # sender unblocked.
    assert desk.user(ADA).click(desk.card(1), "ticket_not_spam").status == 200
    desk.told(ADA, "Ticket #1 is back (open)")
    wait_until(lambda: any("ticket_claim" in u for u in desk.updates_of(1)[1:]), what="the full card again")
    assert desk.ticket(1).status == "open"  # type: ignore[union-attr]
    assert desk.count(BlockedSender) == 0
    assert desk.count(Event, Event.action == "sender_unblocked", Event.actor == ADA) == 1
    wait_until(
        lambda: any(
            "request number 4" in str(m.get("text"))
            for m in desk.slack.thread(CHANNEL, desk.card(1)["ts"])[1:]
        ),
        what="the follow-up in the thread",
    )
    assert "#1" in open_queue(desk)

    # 6. Not spam from the list on a ticket that was never posted: it is posted now.
    listed = {"ts": "0", "blocks": list_blocks(desk, ADA), "is_ephemeral": True, "channel": CHANNEL}
    two = next(
        b
        for b in listed["blocks"]
        if b.get("accessory", {}).get("action_id") == "ticket_not_spam"
        and b["text"]["text"].startswith("#2 ")
    )
    assert desk.user(ADA).click({**listed, "blocks": [two]}, "ticket_not_spam").status == 200
    posted = wait_until(lambda: desk.posted(2), what="ticket #2 posted at last")
    assert "Outage! Invoice attached" in json.dumps(posted["blocks"])

    # Its attachment, held back while it was spam, follows it into its thread. (An upload waits
    # for its ticket's post in steps of bot time, which this desk's clock only moves when told.)
    def uploaded() -> list[dict[str, Any]]:
        desk.clock.advance(timedelta(seconds=1))
        return desk.slack.shared_files(CHANNEL, posted["ts"])

    files = wait_until(uploaded, interval=0.5, what="the invoice uploaded")
    assert [(f["name"], f["content"]) for f in files] == [("invoice.pdf", b"%PDF-1.4 not really")]
    assert desk.ticket(2).status == "open"  # type: ignore[union-attr]

    # 7. The sender's next mail reaches the channel like anyone's.
    desk.imap.append(customer_mail(5, sender=SPAMMER, subject="A real question"))
    wait_until(lambda: desk.posted(4), what="the next mail posted as ticket #4")


def test_a_resolved_ticket_marked_as_spam_gets_no_survey(desk: Desk) -> None:
    desk.imap.append(customer_mail(1, sender="pills@junk.example", subject="Buy now"))
    # After hours: the customer gets the acknowledgement before anyone looks.
    wait_until(lambda: desk.smtp.mails, what="the acknowledgement")
    acknowledged = len(desk.smtp.mails)
    card = desk.card(1)
    assert desk.user(ADA).click(card, "ticket_resolve").status == 200
    wait_until(lambda: desk.ticket(1).status == "resolved", what="#1 resolved")  # type: ignore[union-attr]
    assert desk.user(BOB).click(desk.card(1), "ticket_more", option="spam").status == 200
    wait_until(lambda: desk.ticket(1).status == "spam", what="#1 spam")  # type: ignore[union-attr]

    desk.clock.advance(timedelta(hours=2))
    desk.bot.jobs.send_surveys()
    desk.settle()
    assert len(desk.smtp.mails) == acknowledged
    with desk.bot.factory() as session:
        survey = session.scalar(select(Survey))
        assert survey is not None and survey.status == "skipped"

    # Not spam puts it back where it was: resolved, with its resolution time.
    assert desk.user(ADA).click(desk.card(1), "ticket_not_spam").status == 200
    wait_until(lambda: desk.ticket(1).status == "resolved", what="#1 resolved again")  # type: ignore[union-attr]
    assert desk.ticket(1).resolved_at is not None  # type: ignore[union-attr]


def test_domains_are_for_managers_and_staff_are_never_blocked(desk: Desk) -> None:
    refused = desk.user(BOB).command("spam block-domain junk.example").json()["text"]
    assert "Only managers" in refused
    assert "can't be blocked" in desk.user(MAY).command("spam block-domain example.com").json()["text"]
    assert "Give one domain" in desk.user(MAY).command("spam block-domain nodot").json()["text"]
    assert "Give one domain" in desk.user(MAY).command("spam block-domain").json()["text"]
    assert "I don't know" in desk.user(MAY).command("spam frobnicate x").json()["text"]
    assert "is not blocked" in desk.user(ADA).command("spam unblock nobody@x.example").json()["text"]
    assert desk.count(BlockedSender) == 0

    said = desk.user(MAY).command("spam block-domain Junk.Example.").json()["text"]
    assert "junk.example" in said
    assert desk.count(Event, Event.action == "sender_blocked", Event.actor == MAY) == 1
    desk.imap.append(customer_mail(1, sender="x@mail.junk.example", subject="Deals"))
    wait_until(lambda: desk.ticket(1) is not None, what="the mail stored")
    wait_until(lambda: desk.count(TicketTriage) == 1, what="its triage")
    desk.settle()
    assert desk.ticket(1).status == "spam" and desk.posted(1) is None  # type: ignore[union-attr]
    assert "everyone at junk.example" in json.dumps(list_blocks(desk, ADA))

    assert "Only managers" in desk.user(ADA).command("spam unblock-domain junk.example").json()["text"]
    assert "unblocked" in desk.user(MAY).command("spam unblock-domain junk.example").json()["text"]
    desk.imap.append(customer_mail(2, sender="x@mail.junk.example", subject="Deals again"))
    wait_until(lambda: desk.posted(2), what="mail after the domain is unblocked")

    # A colleague's address (Ada's Slack profile: ada@example.com) is never blocked.
    desk.imap.append(customer_mail(3, sender="ada@example.com", subject="Forwarding a phish"))
    assert desk.user(BOB).click(desk.card(3), "ticket_more", option="spam").status == 200
    assert "can't be blocked" in desk.told(BOB, "Ticket #3 is marked as spam")
    assert desk.count(BlockedSender) == 0
    assert desk.ticket(3).status == "spam"  # type: ignore[union-attr]
    # A spam ticket is nobody's to claim until someone says it is not spam.
    assert "Not spam" in desk.user(ADA).command("claim 3").json()["text"]
    assert desk.ticket(3).owner is None  # type: ignore[union-attr]


def test_staff_stay_protected_in_a_big_workspace_slack_rate_limits(desk: Desk) -> None:
    """Thousands of people in the workspace, users.list throttled (about 20 calls a minute)
    and a 429 from users.info on the way: staff addresses come from the staff list, one
    profile each, with Retry-After waited out, so a colleague is still never blocked."""
    for n in range(3000):
        desk.slack.add_user(f"U1{n:06d}", f"guest{n}", email=f"guest{n}@elsewhere.example")
    desk.slack.fail_next("users.list", times=1000, retry_after=30)
    desk.slack.fail_next("users.info", retry_after=1)
    desk.imap.append(customer_mail(1, sender="bob@example.com", subject="Forwarding a phish"))
    assert desk.user(ADA).click(desk.card(1), "ticket_more", option="spam").status == 200
    assert "can't be blocked" in desk.told(ADA, "Ticket #1 is marked as spam")
    assert desk.count(BlockedSender) == 0
    assert not desk.slack.calls("users.list")
    assert [c.status for c in desk.slack.calls("users.info")].count(429) == 1
    # The command answers within Slack's three seconds, from what is now known.
    said = desk.user(MAY).command("spam block-domain example.com").json()["text"]
    assert "can't be blocked" in said


# -- stats ------------------------------------------------------------------------------------

ROME = ZoneInfo("Europe/Rome")
DAY = datetime(2026, 11, 4, 10, 0, tzinfo=ROME).astimezone(UTC)  # a Wednesday, business hours


def test_stats_leave_spam_out_and_count_it(session_factory: sessionmaker[Session], database_url: str) -> None:
    settings = settings_for(database_url)

    def reply_and_resolve(n: int, who: str, after: timedelta) -> int:
        with transaction(session_factory) as session:
            ticket_id = ingest_email(
                session,
                customer_mail(n, sender=f"c{n}@example.org"),
                mailbox="box",
                channel=CHANNEL,
                now=DAY + timedelta(minutes=n),
            ).ticket_id
        with transaction(session_factory) as session:
            send_reply(
                session,
                ticket_id=ticket_id,
                agent_id=who,
                agent_name=who,
                text="Thanks.",
                html=None,
                template_name=None,
                template_version=None,
                now=DAY + after,
                settings=settings,
            )
            resolve_ticket(session, ticket_id, who, DAY + after)
        return ticket_id

    reply_and_resolve(1, ADA, timedelta(hours=1))
    junk = reply_and_resolve(2, BOB, timedelta(hours=2))
    with transaction(session_factory) as session:
        other = ingest_email(
            session, customer_mail(3), mailbox="box", channel=CHANNEL, now=DAY + timedelta(minutes=3)
        ).ticket_id
        spam.mark_spam(session, junk, ADA, DAY + timedelta(hours=3), protected=())
        spam.mark_spam(session, other, ADA, DAY + timedelta(hours=3), protected=())

    config = StatsConfig(BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME), LoadWeights())
    period = Period(DAY.date(), DAY.date(), ROME)
    with session_factory() as session:
        report = build_report(session, period, DAY + timedelta(days=1), config)
    assert (report.created, report.resolved, report.backlog_end) == (1, 1, 0)
    assert report.first_response.calendar.count == 1 and report.resolution.calendar.count == 1
    assert report.unanswered == 0
    assert set(report.people) <= {ADA} and report.person(ADA).handled == 1
    assert report.person(BOB).handled == 0 and report.person(BOB).replies == 0
    assert report.spam == 2
    text = json.dumps(stats_ui.team_blocks(report), ensure_ascii=False)
    assert "2 tickets marked as spam left out" in text

"""Replies by email: stored, queued, sent over a real SMTP socket (aiosmtpd) by the real outbox worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.config import Settings
from bot.mail.compose import reply_subject, thread_references
from bot.mail.sender import smtp_handlers
from bot.outbox.queue import (
    SLACK_POST,
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_POST,
    SLACK_TICKET_REFRESH,
    SMTP_SEND,
)
from bot.outbox.worker import Backoff, OutboxWorker
from bot.sandbox.imap_server import free_port
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack.delivery import slack_handlers
from bot.slack.mail_notices import reply_notice
from bot.storage.models import Event, Message, OutboxItem, Ticket
from bot.tickets.agent_reply import PickedTemplate, html_may_go_out, send_agent_reply, text_digest
from bot.tickets.ingest import ingest_email
from bot.tickets.replies import send_reply
from bot.tickets.template_store import get_template
from bot.tickets.template_vars import reply_variables
from bot.tickets.templates import render_template
from bot.tickets.workflow import TicketError
from tests.support.mail import customer_mail, message_id_of
from tests.support.settings import make_settings

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CHANNEL = "C0SUPPORT"
SUPPORT = "support@example.com"
AGENT = "UAGENT1"
AGENT_NAME = "Anna Bianchi"
TICKET_TS = "1763629200.000100"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TEMPLATE_NAMES = sorted(p.name.removesuffix(".txt") for p in TEMPLATES.glob("*.txt"))


# -- a real SMTP server (the sandbox's catcher) -------------------------------------------


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def smtp(smtp_port: int) -> Iterator[SmtpCatcher]:
    server = SmtpCatcher(smtp_port).start()
    yield server
    server.stop()


def reply_settings(database_url: str, smtp_port: int, **overrides: str) -> Settings:
    """The shared builder, pointed at this test's SMTP catcher."""
    return make_settings(database_url, SMTP_PORT=str(smtp_port), REPLY_LATE_MINUTES="30", **overrides)


@pytest.fixture
def settings(database_url: str, smtp_port: int) -> Settings:
    return reply_settings(database_url, smtp_port)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def smtp_worker(
    session_factory: sessionmaker[Session], settings: Settings, clock: FrozenClock
) -> OutboxWorker:
    return OutboxWorker(
        session_factory,
        smtp_handlers(settings, session_factory, clock, write_notice=reply_notice, timeout=5),
        lane_prefix="smtp",
        clock=clock,
        backoff=Backoff(base=1.0, cap=60.0),
    )


# -- helpers --------------------------------------------------------------------------------


def ingest(session_factory: sessionmaker[Session], raw: bytes, *, posted: bool = True) -> int:
    with session_factory.begin() as session:
        result = ingest_email(session, raw, mailbox="box", channel=CHANNEL, now=NOW, own_addresses=(SUPPORT,))
        ticket = session.get(Ticket, result.ticket_id)
        assert ticket is not None
        if posted and ticket.slack_ts is None:
            ticket.slack_ts = TICKET_TS  # as if the ticket's channel message had been delivered
        return result.ticket_id


def reply(
    session_factory: sessionmaker[Session],
    settings: Settings,
    ticket_id: int,
    text: str = "Thanks, we are looking into it.",
    *,
    now: datetime = NOW,
    **kwargs: Any,
) -> Message:
    with session_factory.begin() as session:
        return send_reply(
            session,
            ticket_id=ticket_id,
            agent_id=AGENT,
            agent_name=AGENT_NAME,
            text=text,
            now=now,
            settings=settings,
            **kwargs,
        )


def outbox(session_factory: sessionmaker[Session], kind: str) -> list[OutboxItem]:
    with session_factory() as session:
        return list(
            session.scalars(select(OutboxItem).where(OutboxItem.kind == kind).order_by(OutboxItem.id))
        )


def stored(session_factory: sessionmaker[Session], message_id: int) -> Message:
    with session_factory() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def actions(session_factory: sessionmaker[Session]) -> list[str]:
    with session_factory() as session:
        return list(session.scalars(select(Event.action).order_by(Event.id)))


def run_due(worker: OutboxWorker) -> None:
    """Try every due lane head until nothing more goes out.

    Not `drain()`: it also counts a due row waiting behind a backed-off head, so with
    two replies queued while SMTP is down it would wait for its timeout.
    """
    for _ in range(100):
        progressed, _ = worker.run_once()
        if not progressed:
            return
    raise AssertionError("the outbox kept delivering")


def body_of(mail: EmailMessage, subtype: str) -> str:
    part = mail.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    # SMTP carries CRLF line ends; compare the text the agent saw.
    return str(part.get_content()).replace("\r\n", "\n")


def conversation(session_factory: sessionmaker[Session]) -> tuple[int, str, str]:
    """A customer who wrote twice (the second time replying to the first): (ticket id, both Message-IDs)."""
    first = customer_mail(1, sender="maria@example.org", sender_name="Maria Rossi", subject="Cannot sign in")
    ticket_id = ingest(session_factory, first)
    second = customer_mail(
        2,
        sender="maria@example.org",
        sender_name="Maria Rossi",
        subject="Re: Cannot sign in",
        body="Any news?\n",
        in_reply_to=message_id_of(first),
    )
    assert ingest(session_factory, second) == ticket_id
    return ticket_id, message_id_of(first), message_id_of(second)


@pytest.fixture
def sent(session_factory: sessionmaker[Session], settings: Settings) -> Message:
    """The agent's reply in the conversation, queued for SMTP and not yet tried."""
    ticket_id, _, _ = conversation(session_factory)
    return reply(session_factory, settings, ticket_id)


# -- replying with each starter template --------------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_reply_with_each_starter_template_goes_out_threaded(
    name: str,
    session_factory: sessionmaker[Session],
    settings: Settings,
    smtp: SmtpCatcher,
    smtp_worker: OutboxWorker,
) -> None:
    ticket_id, first_id, second_id = conversation(session_factory)
    with session_factory() as session:
        template = get_template(session, settings.templates_dir, name)
        variables = reply_variables(
            session, ticket_id, agent_name=AGENT_NAME, support_address=SUPPORT, now=NOW
        )
    rendered = render_template(template, variables)
    sent = reply(
        session_factory,
        settings,
        ticket_id,
        rendered.text,
        html=rendered.html,
        template_name=template.name,
        template_version=template.version,
    )
    assert stored(session_factory, sent.id).delivery_status == "queued"
    assert smtp.mails == []  # nothing leaves before the outbox delivers it

    smtp_worker.drain()

    assert len(smtp.mails) == 1
    caught = smtp.mails[0]
    mail = caught.message
    assert caught.mail_from == SUPPORT and caught.rcpt_tos == ("maria@example.org",)
    sender = mail["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (f"{AGENT_NAME} via Support", SUPPORT)
    assert mail["To"].addresses[0].addr_spec == "maria@example.org"
    assert mail["To"].addresses[0].display_name == "Maria Rossi"
    assert mail["Subject"] == "Re: Cannot sign in [#1]"
    assert mail["Message-ID"] == f"<{sent.message_id}>"
    assert mail["In-Reply-To"] == second_id
    assert mail["References"].split() == [first_id, second_id]
    assert mail["Date"] is not None and mail["Auto-Submitted"] is None
    assert body_of(mail, "plain") == rendered.text
    if template.html:
        assert mail.get_content_type() == "multipart/alternative"
        assert rendered.html is not None and body_of(mail, "html") == rendered.html
    else:
        assert mail.get_content_type() == "text/plain"
    assert "Maria" in rendered.text and AGENT_NAME in rendered.text

    message = stored(session_factory, sent.id)
    assert (message.delivery_status, message.sent_at) == ("sent", NOW)
    assert (message.direction, message.author, message.template_name) == ("out", AGENT, name)
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and (ticket.status, ticket.owner) == ("waiting", AGENT)
        replied = session.scalar(select(Event).where(Event.action == "replied"))
        assert replied is not None and replied.actor == AGENT and replied.data["template"] == name
    assert actions(session_factory)[-4:] == ["replied", "claimed", "waiting_on_customer", "reply_delivered"]
    # The thread then shows what was sent and by whom (ThreadMessageHandler renders it).
    [thread_post] = outbox(session_factory, SLACK_THREAD_MESSAGE)[-1:]
    assert thread_post.payload == {"message_id": sent.id}
    assert (thread_post.lane, thread_post.dedupe_key) == (f"slack:{CHANNEL}", f"thread-message:{sent.id}")
    # The channel message is refreshed (or, still unposted here, will be posted with current state).
    with session_factory() as session:
        assert session.scalar(
            select(OutboxItem.id).where(
                OutboxItem.ticket_id == ticket_id,
                OutboxItem.kind.in_([SLACK_TICKET_REFRESH, SLACK_TICKET_POST]),
                OutboxItem.status == "pending",
            )
        )


def test_reply_to_honours_reply_to_and_keeps_one_re_and_one_token(
    session_factory: sessionmaker[Session], settings: Settings, smtp: SmtpCatcher, smtp_worker: OutboxWorker
) -> None:
    first = customer_mail(1, sender="maria@example.org", subject="Invoice question")
    ticket_id = ingest(session_factory, first)
    follow_up = customer_mail(
        2,
        sender="maria@example.org",
        subject="RE: Re: AW: Invoice question [#1]",
        in_reply_to=message_id_of(first),
        headers={"Reply-To": "Accounts Team <accounts@example.org>"},
    )
    ingest(session_factory, follow_up)
    reply(session_factory, settings, ticket_id)
    smtp_worker.drain()
    [caught] = smtp.mails
    assert caught.rcpt_tos == ("accounts@example.org",)
    assert caught.message["To"].addresses[0].display_name == "Accounts Team"
    assert caught.message["Subject"] == "Re: Invoice question [#1]"


def test_subject_and_references_rules() -> None:
    assert reply_subject("Re: Re: Help [#12]", 12) == "Re: Help [#12]"
    assert reply_subject("R: Ris: Aiuto", 7) == "Re: Aiuto [#7]"
    assert reply_subject("Re[2]: Sv: Help [#3] again", 3) == "Re: Help again [#3]"
    assert (
        reply_subject("Remote access\r\nBcc: x@evil.example", 4)
        == "Re: Remote access Bcc: x@evil.example [#4]"
    )
    assert reply_subject("", 5) == "Re: [#5]"
    # RFC 5322 §3.6.4: the parent's References (else its In-Reply-To), then its own id.
    assert thread_references(["a@x", "b@x"], "b@x", "c@x") == ["a@x", "b@x", "c@x"]
    assert thread_references([], "b@x", "c@x") == ["b@x", "c@x"]
    assert thread_references([], None, "c@x") == ["c@x"]
    long = thread_references([f"{n}@x" for n in range(40)], None, "last@x")
    assert len(long) == 20 and long[0] == "0@x" and long[-1] == "last@x"


# -- SMTP trouble ----------------------------------------------------------------------------


def test_smtp_down_then_up_delivers_once_with_the_same_message_id(
    session_factory: sessionmaker[Session],
    smtp_port: int,
    smtp_worker: OutboxWorker,
    clock: FrozenClock,
    sent: Message,
) -> None:
    smtp_worker.drain()  # nothing listens on the port yet
    [row] = outbox(session_factory, SMTP_SEND)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "cannot reach the mail server" in (row.last_error or "")
    assert stored(session_factory, sent.id).delivery_status == "queued"

    server = SmtpCatcher(smtp_port).start()
    try:
        clock.advance(timedelta(minutes=2))
        smtp_worker.drain()
        clock.advance(timedelta(minutes=10))
        smtp_worker.drain()
    finally:
        server.stop()

    assert len(server.mails) == 1
    assert server.mails[0].message["Message-ID"] == f"<{sent.message_id}>"
    [row] = outbox(session_factory, SMTP_SEND)
    assert (row.status, row.attempts) == ("done", 2)
    message = stored(session_factory, sent.id)
    assert message.delivery_status == "sent" and message.sent_at == NOW + timedelta(minutes=2)
    # Date is when the agent pressed Send, so the retry is byte-for-byte the same email.
    assert server.mails[0].message["Date"].datetime == NOW
    assert outbox(session_factory, SLACK_POST) == []  # delivered before it was late


def test_undelivered_reply_tells_the_agent_once_after_the_configured_time(
    session_factory: sessionmaker[Session],
    settings: Settings,
    smtp_port: int,
    smtp_worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ticket_id, _, _ = conversation(session_factory)
    first = reply(session_factory, settings, ticket_id, "First answer")
    second = reply(session_factory, settings, ticket_id, "Second answer", now=NOW + timedelta(minutes=5))

    run_due(smtp_worker)
    clock.advance(timedelta(minutes=29))
    run_due(smtp_worker)
    assert outbox(session_factory, SLACK_POST) == []  # not late yet

    clock.advance(timedelta(minutes=2))  # 31 minutes after the first reply was queued
    run_due(smtp_worker)
    notices = outbox(session_factory, SLACK_POST)
    assert [n.dedupe_key for n in notices] == [f"reply-late:{first.id}"]
    notice = notices[0]
    assert notice.lane == f"slack:{CHANNEL}"
    assert notice.payload["channel"] == CHANNEL and notice.payload["thread_ts"] == TICKET_TS
    assert f"<@{AGENT}>" in notice.payload["text"] and "#1" in notice.payload["text"]
    assert "cannot reach the mail server" in notice.payload["text"]

    for _ in range(3):  # still down: retried, but the agent is not told again
        clock.advance(timedelta(minutes=5))
        run_due(smtp_worker)
    notices = outbox(session_factory, SLACK_POST)
    # The second reply, queued behind the first, is told about once it is late too.
    assert [n.dedupe_key for n in notices] == [f"reply-late:{first.id}", f"reply-late:{second.id}"]
    assert actions(session_factory).count("reply_late") == 2

    server = SmtpCatcher(smtp_port).start()
    try:
        clock.advance(timedelta(minutes=2))
        run_due(smtp_worker)
    finally:
        server.stop()
    assert [m.message["Message-ID"] for m in server.mails] == [
        f"<{first.message_id}>",
        f"<{second.message_id}>",
    ]
    assert len(outbox(session_factory, SLACK_POST)) == 2
    assert {stored(session_factory, m.id).delivery_status for m in (first, second)} == {"sent"}


def test_a_temporary_refusal_is_retried(
    session_factory: sessionmaker[Session],
    smtp: SmtpCatcher,
    smtp_worker: OutboxWorker,
    clock: FrozenClock,
    sent: Message,
) -> None:
    smtp.refuse_rcpt = "451 4.7.1 Greylisted, please try again later"
    smtp_worker.drain()
    [row] = outbox(session_factory, SMTP_SEND)
    assert row.status == "pending" and "451" in (row.last_error or "")
    smtp.refuse_rcpt = None
    clock.advance(timedelta(minutes=2))
    smtp_worker.drain()
    assert len(smtp.mails) == 1
    assert stored(session_factory, sent.id).delivery_status == "sent"


def test_a_permanent_refusal_fails_the_reply_and_tells_the_thread(
    session_factory: sessionmaker[Session],
    smtp: SmtpCatcher,
    smtp_worker: OutboxWorker,
    sent: Message,
) -> None:
    smtp.refuse_rcpt = "550 5.1.1 <maria@example.org>: Recipient address rejected: User unknown"
    smtp_worker.drain()

    assert smtp.mails == []
    [row] = outbox(session_factory, SMTP_SEND)
    assert row.status == "dead" and "550" in (row.last_error or "")
    assert stored(session_factory, sent.id).delivery_status == "failed"
    [notice] = outbox(session_factory, SLACK_POST)
    assert notice.dedupe_key == f"reply-failed:{sent.id}" and notice.payload["thread_ts"] == TICKET_TS
    assert f"<@{AGENT}>" in notice.payload["text"] and "User unknown" in notice.payload["text"]
    assert "reply_failed" in actions(session_factory)
    assert all(r.payload["message_id"] != sent.id for r in outbox(session_factory, SLACK_THREAD_MESSAGE))


def test_the_smtp_password_never_reaches_logs_or_slack(
    session_factory: sessionmaker[Session],
    database_url: str,
    smtp: SmtpCatcher,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # aiosmtpd offers no AUTH here, so the login fails: the error path is what must stay clean.
    settings = reply_settings(database_url, smtp.port, SMTP_USER="bot", SMTP_PASSWORD="hunter2-secret")
    worker = OutboxWorker(
        session_factory,
        smtp_handlers(settings, session_factory, clock, write_notice=reply_notice, timeout=5),
        lane_prefix="smtp",
        clock=clock,
    )
    ticket_id, _, _ = conversation(session_factory)
    reply(session_factory, settings, ticket_id)
    with caplog.at_level("DEBUG"):
        worker.drain()
        clock.advance(timedelta(minutes=45))
        worker.drain()
    [row] = outbox(session_factory, SMTP_SEND)
    assert row.status == "pending" and "hunter2" not in (row.last_error or "")
    assert "hunter2" not in caplog.text
    assert all("hunter2" not in str(n.payload) for n in outbox(session_factory, SLACK_POST))
    assert "hunter2" not in repr(settings)


# -- what is refused before anything is queued ----------------------------------------------


def _nothing_queued(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        assert session.scalars(select(Message).where(Message.direction == "out")).all() == []
    assert outbox(session_factory, SMTP_SEND) == []
    assert "replied" not in actions(session_factory)


def test_an_empty_reply_is_refused(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id, _, _ = conversation(session_factory)
    with pytest.raises(TicketError, match="empty reply"):
        reply(session_factory, settings, ticket_id, "  \n\t ")
    _nothing_queued(session_factory)


def test_a_ticket_without_a_customer_address_is_refused(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        ticket = Ticket(
            number=99,
            customer=None,
            subject="(unreadable email)",
            status="open",
            malformed=True,
            auto_reason="malformed",
            created_at=NOW,
            updated_at=NOW,
            slack_channel=CHANNEL,
        )
        session.add(ticket)
        session.flush()
        ticket_id = ticket.id
    with pytest.raises(TicketError, match="no customer address"):
        reply(session_factory, settings, ticket_id)
    _nothing_queued(session_factory)


def test_mail_from_our_own_address_is_never_answered(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = ingest(session_factory, customer_mail(1, sender=SUPPORT, sender_name="Support"))
    with pytest.raises(TicketError, match="no customer address"):
        reply(session_factory, settings, ticket_id)
    _nothing_queued(session_factory)


def test_automatic_replies_are_marked_and_never_answer_automatic_mail(
    session_factory: sessionmaker[Session], settings: Settings, smtp: SmtpCatcher, smtp_worker: OutboxWorker
) -> None:
    ticket_id, _, _ = conversation(session_factory)
    reply(session_factory, settings, ticket_id, "We got your message.", automatic=True)
    smtp_worker.drain()
    assert smtp.mails[0].message["Auto-Submitted"] == "auto-replied"

    out_of_office = customer_mail(5, sender="bob@example.org", headers={"Auto-Submitted": "auto-replied"})
    auto_ticket = ingest(session_factory, out_of_office)
    with pytest.raises(TicketError, match="automatic mail"):
        reply(session_factory, settings, auto_ticket, "Thanks!", automatic=True)


# -- all the way to the Slack thread ------------------------------------------------------------


def test_the_thread_shows_the_sent_reply_and_who_sent_it(
    session_factory: sessionmaker[Session],
    settings: Settings,
    smtp: SmtpCatcher,
    smtp_worker: OutboxWorker,
    clock: FrozenClock,
    slack: SlackStandIn,
) -> None:
    slack_worker = OutboxWorker(
        session_factory,
        slack_handlers(WebClient(token="xoxb-test-token", base_url=slack.base_url), session_factory),
        lane_prefix="slack:",
        clock=clock,
    )
    ticket_id = ingest(session_factory, customer_mail(1, sender="maria@example.org"), posted=False)
    slack_worker.drain()
    [posted] = slack.messages(CHANNEL)

    reply(session_factory, settings, ticket_id, "Your account is unlocked now.")
    smtp_worker.drain()
    slack_worker.drain()

    thread = slack.thread(CHANNEL, posted["ts"])
    texts = [str(m.get("text", "")) + str(m.get("blocks", "")) for m in thread[1:]]
    assert any(f"<@{AGENT}> replied" in t and "Your account is unlocked now." in t for t in texts)


# -- the reply form's use case: when a template's HTML part may go out ------------------------


def test_only_an_unedited_template_may_carry_its_html() -> None:
    picked = PickedTemplate("password_reset.en", 1, text_digest("Hello Maria,\nhere is the link.\n"))
    assert html_may_go_out("Hello Maria,\nhere is the link.", picked)  # trailing space is not an edit
    assert not html_may_go_out("Hello Maria,\nhere is the new link.", picked)
    assert not html_may_go_out("anything", None)
    assert not html_may_go_out("anything", PickedTemplate("password_reset.en", 1, None))


@pytest.mark.parametrize("edited", [False, True])
def test_the_reply_form_sends_html_only_for_the_template_as_rendered(
    edited: bool, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id, _, _ = conversation(session_factory)
    with session_factory() as session:
        template = get_template(session, settings.templates_dir, "password_reset.en")
        variables = reply_variables(
            session,
            ticket_id,
            agent_name=AGENT_NAME,
            support_address=SUPPORT,
            now=NOW,
            timezone=settings.timezone,
        )
    rendered = render_template(template, variables)
    assert rendered.html
    picked = PickedTemplate(template.name, template.version, text_digest(rendered.text))
    text = rendered.text + ("\nP.S. one more thing." if edited else "")
    with session_factory.begin() as session:
        sent = send_agent_reply(
            session,
            ticket_id=ticket_id,
            agent_id=AGENT,
            agent_name=AGENT_NAME,
            text=text,
            picked=picked,
            cc=None,
            now=NOW,
            settings=settings,
        )
    message = stored(session_factory, sent.message_id)
    assert sent.with_html is not edited
    assert (message.html is None) is edited
    assert (message.template_name, message.template_version) == (template.name, template.version)

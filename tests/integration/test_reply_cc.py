"""Reply all: the people a customer copied stay on our reply, end to end.

Mail goes in over IMAP (pymap), staff open the reply modal and send through signed
requests into the bot's real endpoint, and the mail comes out at a real SMTP server
(aiosmtpd) that can refuse chosen recipients, as a real one does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack import modals, render
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Event, Message, Ticket
from bot.tickets.replies import CC_LIMIT, CcError, default_cc, parse_cc
from bot.tickets.views import MessageCard
from tests.support.block_kit import HOSTILE_FRAGMENTS, MARKER, assert_safe_message, assert_safe_view
from tests.support.harness import CHANNEL, SUPPORT_ADDRESS, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail, message_id_of
from tests.support.slack_requests import SlackUser

pytestmark = pytest.mark.timeout(180)

ADA = "U0ADA"
CUSTOMER = "maria@example.org"
LUCA = "luca@example.org"
GIULIA = "giulia@example.net"
PAOLO = "paolo@example.com"
# A display name that would ping the channel if it reached mrkdwn unescaped.
LUCA_NAME = "<!channel> Luca Bianchi"
NIGHT = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # Monday 22:00 in Rome: after hours
STARTER = sorted(
    p.name.removesuffix(".txt") for p in (Path(__file__).parents[2] / "templates").glob("*.txt")
)[0]


class PickySmtp(SmtpCatcher):
    """The sandbox's SMTP catcher, refusing the RCPT of chosen addresses (address → answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: dict[str, str] = {}

    def start(self) -> PickySmtp:
        self._controller = Controller(_PickyHandler(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self


class _PickyHandler:
    def __init__(self, catcher: PickySmtp) -> None:
        self.catcher = catcher

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        answer = self.catcher.refuse.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.catcher._receive(envelope)


@dataclass
class Desk:
    bot: SupportBot
    slack: SlackStandIn
    imap: PymapServer
    smtp: PickySmtp
    factory: sessionmaker[Session]

    def ada(self) -> SlackUser:
        return SlackUser(self.bot.url, self.slack, ADA)

    def ticket_message(self, number: int = 1) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for m in self.slack.messages(CHANNEL):
                metadata = m.get("metadata") or {}
                if metadata.get("event_type") == render.TICKET_EVENT_TYPE and (
                    (metadata.get("event_payload") or {}).get("number") == number
                ):
                    return {**m, "channel": CHANNEL}
            return None

        return wait_until(find, what=f"ticket #{number} in the channel")

    def thread(self, number: int = 1) -> list[dict[str, Any]]:
        return self.slack.thread(CHANNEL, self.ticket_message(number)["ts"])[1:]

    def open_reply(self) -> str:
        before = set(self.slack.views)
        assert self.ada().click(self.ticket_message(), "ticket_reply").status == 200
        return wait_until(lambda: list(set(self.slack.views) - before), what="the reply modal")[0]

    def body_block(self, view_id: str) -> str:
        return next(
            b["block_id"]
            for b in self.slack.views[view_id]["blocks"]
            if b["type"] == "input" and b["element"]["action_id"] == modals.BODY_ACTION
        )

    def cc_field(self, view_id: str) -> str:
        block = next(b for b in self.slack.views[view_id]["blocks"] if b.get("block_id") == modals.CC_BLOCK)
        return str(block["element"].get("initial_value", ""))

    def count(self, model: type, *where: Any) -> int:
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def events(self, action: str) -> list[Event]:
        with self.factory() as session:
            return list(session.scalars(select(Event).where(Event.action == action).order_by(Event.id)))

    def replies(self) -> list[Message]:
        with self.factory() as session:
            return list(
                session.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))
            )


@contextmanager
def start_desk(imap: PymapServer, slack: SlackStandIn, database_url: str, **env: str) -> Iterator[Desk]:
    slack.add_user(ADA, "ada", "Ada Staff", channels=(CHANNEL,))
    clock = FrozenClock(NIGHT) if env.get("AUTO_ACK") == "true" else None
    with PickySmtp() as smtp:
        settings = bot_env(
            slack_url=slack.base_url, imap=imap, database_url=database_url, smtp_port=smtp.port, **env
        )
        with running_bot(settings, clock=clock) as bot:
            engine = make_engine(database_url)
            try:
                yield Desk(bot, slack, imap, smtp, make_sessionmaker(engine))
            finally:
                engine.dispose()


@pytest.fixture
def desk(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[Desk]:
    with start_desk(imap, slack, database_url) as started:
        yield started


def copied_mail(**headers: str) -> bytes:
    """Maria writes to support and copies two colleagues, and our own address in capitals."""
    return customer_mail(
        1,
        sender=CUSTOMER,
        sender_name="Maria Rossi",
        subject="Invoice 2026-114 is wrong",
        body="Hello, the invoice is wrong. I copied my colleagues.\n",
        headers={
            "Cc": f'"{LUCA_NAME}" <{LUCA}>, Giulia Verdi <{GIULIA}>, "Support" <SUPPORT@Example.COM>',
            **headers,
        },
    )


def expected_cc() -> str:
    return f'"{LUCA_NAME}" <{LUCA}>, Giulia Verdi <{GIULIA}>'


def ready_modal(desk: Desk, raw: bytes | None = None) -> str:
    desk.imap.append(raw or copied_mail())
    desk.ticket_message()
    return desk.open_reply()


# -- the default: reply all ------------------------------------------------------------------


def test_a_reply_keeps_the_people_the_customer_copied(desk: Desk) -> None:
    view_id = ready_modal(desk)
    view = desk.slack.views[view_id]
    # The modal says who the reply goes to, and proposes everyone else but us.
    heading = json.dumps(view["blocks"][0])
    assert "Maria Rossi" in heading and CUSTOMER in heading
    assert desk.cc_field(view_id) == expected_cc()
    assert "support@example.com" not in desk.cc_field(view_id).lower()

    answer = desk.ada().submit(view_id, {desk.body_block(view_id): "We are correcting the invoice today."})
    assert answer.status == 200 and not answer.body.strip(), answer.body

    [caught] = desk.smtp.wait_for(1)
    assert caught.rcpt_tos == (CUSTOMER, LUCA, GIULIA)
    mail = caught.message
    assert [a.addr_spec for a in mail["To"].addresses] == [CUSTOMER]
    assert [(a.display_name, a.addr_spec) for a in mail["Cc"].addresses] == [
        (LUCA_NAME, LUCA),
        ("Giulia Verdi", GIULIA),
    ]
    # Stored beside the To, so any retry sends the same copies.
    [reply] = desk.replies()
    assert ["Cc", expected_cc()] in reply.headers
    [replied] = desk.events("replied")
    assert replied.data["to"] == CUSTOMER and replied.data["cc"] == [LUCA, GIULIA]
    wait_until(lambda: desk.events("reply_delivered"), what="the delivery recorded")
    assert desk.events("reply_delivered")[0].data["cc"] == [LUCA, GIULIA]

    # The thread shows who got it, with the name from the email made inert.
    post = wait_until(
        lambda: next((m for m in desk.thread() if "replied" in json.dumps(m.get("blocks"))), None),
        what="the reply in the thread",
    )
    shown = json.dumps(post["blocks"])
    assert (
        "&lt;!channel&gt; Luca Bianchi" in shown
        and GIULIA in shown
        and f"To: Maria Rossi &lt;{CUSTOMER}&gt;" in shown
    )
    assert "<!channel>" not in shown
    assert_safe_message(post.get("text"), post["blocks"])


def test_an_edited_cc_survives_a_template_and_is_what_goes_out(desk: Desk) -> None:
    view_id = ready_modal(desk)
    edited = f'"{LUCA_NAME}" <{LUCA}>; Paolo Neri <{PAOLO}>'  # Giulia removed, Paolo added
    hash_before = desk.slack.views[view_id]["hash"]
    # Slack sends what every input holds with the pick; the Cc must not snap back to the default.
    desk.ada().pick(view_id, modals.ACTION_PICK_TEMPLATE, STARTER, values={modals.CC_BLOCK: edited})
    wait_until(lambda: desk.slack.views[view_id]["hash"] != hash_before, what="the rendered template")
    assert desk.cc_field(view_id) == edited
    assert desk.slack.views[view_id]["blocks"][-1]["block_id"] == modals.CC_BLOCK

    assert desk.ada().submit(view_id).status == 200  # as shown: the template's text, the edited Cc
    [caught] = desk.smtp.wait_for(1)
    assert caught.rcpt_tos == (CUSTOMER, LUCA, PAOLO)
    assert [a.addr_spec for a in caught.message["Cc"].addresses] == [LUCA, PAOLO]
    assert desk.events("replied")[0].data["template"] == STARTER


def test_an_emptied_cc_sends_to_the_customer_alone(desk: Desk) -> None:
    view_id = ready_modal(desk)
    desk.ada().submit(view_id, {desk.body_block(view_id): "Only for you.", modals.CC_BLOCK: ""})
    [caught] = desk.smtp.wait_for(1)
    assert caught.rcpt_tos == (CUSTOMER,)
    assert caught.message["Cc"] is None


def test_a_bad_cc_is_answered_beside_the_field_and_nothing_is_sent(desk: Desk) -> None:
    view_id = ready_modal(desk)
    body = {desk.body_block(view_id): "Here is the corrected invoice."}
    too_many = ", ".join(f"person{i}@example.com" for i in range(CC_LIMIT + 1))
    for typed, said in (
        (f"{LUCA}, luca at example dot org", "is not an email address"),
        ("giulia@example", "is not an email address"),
        (f"{LUCA}, Support <Support@EXAMPLE.com>", "our own support address"),
        (too_many, f"at most {CC_LIMIT}"),
    ):
        answer = desk.ada().submit(view_id, {**body, modals.CC_BLOCK: typed}).json()
        assert answer["response_action"] == "errors", typed
        assert list(answer["errors"]) == [modals.CC_BLOCK] and said in answer["errors"][modals.CC_BLOCK], (
            answer
        )
    # An empty message and a bad Cc: both are said at once.
    answer = desk.ada().submit(view_id, {desk.body_block(view_id): " ", modals.CC_BLOCK: "nobody"}).json()
    assert set(answer["errors"]) == {modals.CC_BLOCK, desk.body_block(view_id)}
    time.sleep(0.5)  # anything queued would be on its way by now
    assert desk.smtp.mails == []
    assert desk.count(Message, Message.direction == "out") == 0
    assert desk.events("replied") == []
    # Fixed, it goes.
    assert desk.ada().submit(view_id, {**body, modals.CC_BLOCK: f"{LUCA}\n{PAOLO}"}).status == 200
    assert desk.smtp.wait_for(1)[0].rcpt_tos == (CUSTOMER, LUCA, PAOLO)


# -- automatic replies copy nobody -----------------------------------------------------------------


def test_the_after_hours_acknowledgement_copies_nobody(
    imap: PymapServer, slack: SlackStandIn, database_url: str
) -> None:
    with start_desk(imap, slack, database_url, AUTO_ACK="true") as desk:
        desk.imap.append(copied_mail())
        [caught] = desk.smtp.wait_for(1, timeout=30)
        assert caught.rcpt_tos == (CUSTOMER,)
        assert caught.message["Auto-Submitted"] == "auto-replied"
        assert caught.message["Cc"] is None
        [ack] = desk.replies()
        assert not [name for name, _ in ack.headers if name.lower() == "cc"]
        assert desk.events("replied")[0].data["cc"] == []


# -- the mail server refusing some recipients -------------------------------------------------------


def test_a_refused_copy_still_sends_the_reply_and_tells_the_thread_once(desk: Desk) -> None:
    desk.smtp.refuse[GIULIA] = "550 5.1.1 <giulia@example.net>: no such user"
    view_id = ready_modal(desk)
    desk.ada().submit(view_id, {desk.body_block(view_id): "Corrected invoice attached."})
    [caught] = desk.smtp.wait_for(1)
    assert caught.rcpt_tos == (CUSTOMER, LUCA)
    assert GIULIA in str(caught.message["Cc"]), "the header still says who was meant to have it"

    def notes() -> list[str]:
        return [m["text"] for m in desk.thread() if "would not take these copies" in m.get("text", "")]

    [note] = wait_until(notes, what="the note about the refused copy")
    assert f"<@{ADA}>" in note and GIULIA in note and "550 5.1.1" in note and LUCA not in note
    assert "&lt;giulia@example.net&gt;" in note, "the server's answer is outside text: escaped"
    [reply] = desk.replies()
    assert reply.delivery_status == "sent"
    [delivered] = desk.events("reply_delivered")
    assert delivered.data["cc"] == [LUCA] and list(delivered.data["cc_refused"]) == [GIULIA]
    # The timeline says who it was meant for, and who did not get it.
    timeline = json.dumps(desk.ada().command("ticket 1").json()["blocks"])
    assert f"replied by email to {CUSTOMER}, cc {LUCA}, {GIULIA}" in timeline
    assert f"reply delivered; the mail server refused the copies to {GIULIA}" in timeline
    wait_until(lambda: any("replied" in json.dumps(m.get("blocks")) for m in desk.thread()), what="the reply")
    time.sleep(0.5)
    assert len(notes()) == 1
    assert len(desk.smtp.mails) == 1


def test_a_refused_customer_fails_the_reply_and_no_copy_goes_out(desk: Desk) -> None:
    desk.smtp.refuse[CUSTOMER] = "550 5.1.1 no such user"
    view_id = ready_modal(desk)
    desk.ada().submit(view_id, {desk.body_block(view_id): "Corrected invoice attached."})
    wait_until(
        lambda: desk.count(Message, Message.direction == "out", Message.delivery_status == "failed"),
        what="the reply marked failed",
    )
    note = wait_until(
        lambda: next((m["text"] for m in desk.thread() if "could not be sent" in m.get("text", "")), None),
        what="the failure in the thread",
    )
    assert CUSTOMER in note
    # The copies were never sent: a colleague must not hold a reply the customer never got.
    assert desk.smtp.mails == []


# -- a copied colleague answering ------------------------------------------------------------------


def test_a_copied_colleagues_reply_all_joins_the_ticket_and_is_answered(desk: Desk) -> None:
    first = copied_mail()
    view_id = ready_modal(desk, first)
    desk.ada().submit(view_id, {desk.body_block(view_id): "Which invoice line is wrong?"})
    [ours] = desk.smtp.wait_for(1)
    our_id = ours.message["Message-ID"]
    # Luca answers with reply-all, as his mail client writes it: To the sender, Cc everyone else.
    desk.imap.append(
        customer_mail(
            2,
            sender=LUCA,
            sender_name="Luca Bianchi",
            subject=f"Re: {ours.message['Subject']}",
            body="Line 3: the VAT rate.\n",
            in_reply_to=our_id,
            references=[message_id_of(first)],
            to=f"Ada Staff via Support <{SUPPORT_ADDRESS}>",
            headers={"Cc": f"Maria Rossi <{CUSTOMER}>, Giulia Verdi <{GIULIA}>"},
        )
    )
    wait_until(
        lambda: desk.count(Message, Message.direction == "in", Message.from_address == LUCA),
        what="Luca's answer stored",
    )
    assert desk.count(Ticket) == 1
    with desk.factory() as session:
        ticket_of_luca = session.scalar(select(Message.ticket_id).where(Message.from_address == LUCA))
        assert ticket_of_luca == session.scalar(select(Ticket.id).where(Ticket.number == 1))
    # Our next reply still goes to Maria, and copies Luca (who wrote) and Giulia.
    view_id = desk.open_reply()
    assert desk.cc_field(view_id) == f"Luca Bianchi <{LUCA}>, Giulia Verdi <{GIULIA}>"
    desk.ada().submit(view_id, {desk.body_block(view_id): "Fixed: the VAT rate is now right."})
    second = desk.smtp.wait_for(2)[1]
    assert second.rcpt_tos == (CUSTOMER, LUCA, GIULIA)


# -- the rules, without servers ----------------------------------------------------------------------


class _Latest:
    """What `default_cc` reads of a stored message."""

    def __init__(self, headers: list[list[str]], from_address: str = CUSTOMER, from_name: str = "") -> None:
        self.headers = headers
        self.from_address = from_address
        self.from_name = from_name


def test_the_default_cc_is_capped_deduplicated_and_never_us() -> None:
    to = Address("Maria", addr_spec=CUSTOMER)
    many = ", ".join(f"P{i} <p{i}@example.com>" for i in range(500))
    latest = _Latest(
        [
            ["To", "support@example.com, MARIA@example.org,\r\n P0 <P0@EXAMPLE.com>"],
            ["Cc", many + ", not an address, undisclosed-recipients:;"],
        ]
    )
    cc, left_out = default_cc(latest, to, "support@example.com")  # type: ignore[arg-type]
    assert len(cc) == CC_LIMIT and left_out == 500 - CC_LIMIT
    assert [a.addr_spec for a in cc[:2]] == ["P0@EXAMPLE.com", "p1@example.com"]
    # With a Reply-To the sender asked to be answered elsewhere: they are not copied.
    assert default_cc(_Latest([["Reply-To", CUSTOMER]], "robot@example.org"), to, "s@x.io") == ([], 0)  # type: ignore[arg-type]
    assert default_cc(None, to, "s@x.io") == ([], 0)


def test_typed_cc_is_read_like_a_mail_client_reads_it() -> None:
    typed = f'"Bianchi, Luca" <{LUCA}>; {GIULIA}\n{GIULIA.upper()}, , {PAOLO}'
    assert [(a.display_name, a.addr_spec) for a in parse_cc(typed, SUPPORT_ADDRESS)] == [
        ("Bianchi, Luca", LUCA),
        ("", GIULIA),
        ("", PAOLO),
    ]
    assert parse_cc("   ", SUPPORT_ADDRESS) == []
    for bad in (
        "luca",
        "a@b",
        "x@exa mple.com",
        "Luca <luca@example.org",
        "jörg@example.de",
        "a" * 300 + "@x.io",
    ):
        with pytest.raises(CcError):
            parse_cc(bad, SUPPORT_ADDRESS)
    with pytest.raises(CcError, match="at most"):
        parse_cc("x" * 100_000, SUPPORT_ADDRESS)


def test_recipients_from_email_are_inert_in_the_thread_and_the_modal() -> None:
    hostile = "".join(HOSTILE_FRAGMENTS) + MARKER
    card = MessageCard(
        id=1,
        ticket_id=7,
        ticket_number=123,
        direction="out",
        from_name="Ada via Support",
        from_address=SUPPORT_ADDRESS,
        author=ADA,
        at=NIGHT,
        subject="Re: x",
        text="Hello",
        attachments=(),
        auto_reason=None,
        parse_error=None,
        to=f'"{hostile}" <{CUSTOMER}>',
        cc=", ".join(f'"{hostile}" <p{i}@example.com>' for i in range(CC_LIMIT)),
    )
    text, blocks = render.thread_message(card)
    assert_safe_message(text, blocks, render.message_metadata(card, 9))
    assert "Cc: " in json.dumps(blocks)
    view = modals.reply_modal(
        ticket_id=7,
        number=123,
        customer=f'"{hostile}" <{CUSTOMER}>',
        subject=hostile,
        last_message=hostile,
        templates=[],
        cc=card.cc * 10,
        cc_hint=hostile * 100,
    )
    assert_safe_view(view)

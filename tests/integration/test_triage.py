"""Triage of new tickets: urgency rules, paging urgent mail after hours, the automatic acknowledgement.

Times are explicit: the team works mon-fri 09:00-18:00 Europe/Rome, and Monday
23 November 2026 at 22:00 in Rome is after hours (next opening: Tuesday 09:00).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.config import Settings
from bot.outbox.queue import SLACK_PAGE, SLACK_TICKET_POST, SLACK_TICKET_REFRESH, SMTP_SEND
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.slack.paging import pager
from bot.slack.render import ticket_message
from bot.storage.models import AutoReply, Event, Message, OutboxItem, Page, Ticket, TicketTriage, UrgencyRule
from bot.tickets.autoack import detect_language, format_opening
from bot.tickets.triage import TriageResult, triage_pending
from bot.tickets.urgency import (
    Rule,
    RuleError,
    TicketFacts,
    add_rule,
    clean_rule,
    evaluate,
    keyword_in,
    load_rules,
    move_rule,
    remove_rule,
    seed_rules,
)
from bot.tickets.views import ticket_card
from tests.support.desk import Desk, add_people, running_desk
from tests.support.harness import bot_env, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.settings import make_settings
from tests.support.stored_tickets import ingest_posted

NIGHT = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # Monday 22:00 in Rome
DAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday 11:00 in Rome
NEXT_OPENING_EN = "tomorrow, Tuesday 24 November, at 09:00 (Europe/Rome time)"
NEXT_OPENING_IT = "domani, martedì 24 novembre, alle 09:00 (ora di Europe/Rome)"
MANAGER, STAFF = "U0MAY", "U0ADA"
ROOT = Path(__file__).resolve().parents[2]


# What triage's assertions depend on: Rome's opening hours and who manages.
TRIAGE_SETTINGS = {"TIMEZONE": "Europe/Rome", "MANAGERS": MANAGER}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, **TRIAGE_SETTINGS)


def ingest(factory: sessionmaker[Session], raw: bytes, now: datetime) -> int:
    with factory.begin() as session:
        ticket_id = ingest_posted(session, raw, now).ticket_id
        # Its post delivered too, so only what triage queues is left in the outbox.
        for item in session.scalars(
            select(OutboxItem).where(OutboxItem.ticket_id == ticket_id, OutboxItem.kind == SLACK_TICKET_POST)
        ):
            item.status = "done"
        return ticket_id


def triage(factory: sessionmaker[Session], settings: Settings, now: datetime) -> list[TriageResult]:
    with factory.begin() as session:
        return triage_pending(session, settings, settings.calendar(), now, page=pager(settings))


def add(factory: sessionmaker[Session], kind: str, pattern: str, urgent: bool = True) -> None:
    with factory.begin() as session:
        add_rule(session, kind=kind, pattern=pattern, urgent=urgent, user=MANAGER, now=NIGHT)


def count(factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def auto_messages(factory: sessionmaker[Session]) -> list[Message]:
    with factory() as session:
        return list(
            session.scalars(
                select(Message)
                .where(Message.direction == "out", Message.author == "auto")
                .order_by(Message.id)
            )
        )


# -- urgency rules: matching ---------------------------------------------------------------


def rule(position: int, kind: str, pattern: str, urgent: bool = True) -> Rule:
    return Rule(position, position, kind, pattern, urgent)  # type: ignore[arg-type]


def facts(
    subject: str = "", text: str = "", sender: str = "ada@example.org", tags: tuple[str, ...] = ()
) -> TicketFacts:
    return TicketFacts(subject=subject, text=text, sender=sender, tags=tags)


def test_first_matching_rule_decides_so_an_exception_goes_first() -> None:
    rules = [rule(1, "sender", "noreply@vip.example.com", urgent=False), rule(2, "domain", "vip.example.com")]
    quiet = evaluate(rules, facts(sender="noreply@vip.example.com"))
    assert (quiet.urgent, quiet.reason) == (False, "sender noreply@vip.example.com")
    loud = evaluate(rules, facts(sender="boss@vip.example.com"))
    assert loud.urgent and loud.reason == "sender domain vip.example.com"
    # The same two rules the other way round: the domain rule wins for everyone.
    assert evaluate(
        list(
            reversed(
                [rule(2, "sender", "noreply@vip.example.com", False), rule(1, "domain", "vip.example.com")]
            )
        ),
        facts(sender="noreply@vip.example.com"),
    ).urgent


def test_no_rule_matching_is_not_urgent() -> None:
    verdict = evaluate([rule(1, "keyword", "outage")], facts(subject="Invoice question", text="Hello"))
    assert (verdict.urgent, verdict.reason, verdict.rule_id) == (False, "", None)
    assert not evaluate([], facts(subject="outage")).urgent


def test_each_kind_of_rule() -> None:
    assert evaluate([rule(1, "keyword", "outage")], facts(subject="Major OUTAGE now")).reason == (
        "keyword “outage” in the subject"
    )
    assert evaluate(
        [rule(1, "keyword", "server down")], facts(text="our\nserver   down since 2am")
    ).reason == ("keyword “server down” in the message")
    assert evaluate([rule(1, "sender", "ceo@client.example")], facts(sender="CEO@Client.example")).urgent
    assert not evaluate([rule(1, "sender", "ceo@client.example")], facts(sender="cfo@client.example")).urgent
    by_domain = [rule(1, "domain", "vip.example.com")]
    assert evaluate(by_domain, facts(sender="a@vip.example.com")).urgent
    assert evaluate(by_domain, facts(sender="a@eu.vip.example.com")).reason == (
        "sender domain vip.example.com (a@eu.vip.example.com)"
    )
    assert not evaluate(by_domain, facts(sender="a@notvip.example.com")).urgent
    assert not evaluate(by_domain, facts(sender="a@vip.example.com.evil.test")).urgent
    assert (
        evaluate([rule(1, "tag", "security")], facts(tags=("billing", "security"))).reason == "tag security"
    )
    assert not evaluate([rule(1, "tag", "security")], facts(tags=("billing",))).urgent


def test_keywords_match_whole_words_in_any_script() -> None:
    assert keyword_in("urgente", "È URGENTE, il sito non funziona")
    assert keyword_in("dringend", "Bitte dringend antworten!")
    assert keyword_in("срочно", "Срочно: сервер не отвечает")
    assert keyword_in("κρίσιμο", "Κρίσιμο πρόβλημα")
    assert keyword_in("straße", "Die STRASSE ist gesperrt")  # casefold: ß is ss
    # Whole words: a keyword is not part of a longer word, in any script.
    assert not keyword_in("outage", "no outages reported")
    assert not keyword_in("urgente", "urgentemente")
    assert not keyword_in("срочно", "несрочно")
    assert not keyword_in("down", "download")
    # … unless the rule asks for the prefix.
    assert keyword_in("outage*", "no outages reported")
    assert keyword_in("outage*", "an outage")


def test_rules_typed_by_managers_are_checked() -> None:
    assert clean_rule("domain", "@VIP.Example.com") == ("domain", "vip.example.com")
    assert clean_rule("sender", "<mailto:Boss@vip.example.com|Boss@vip.example.com>") == (
        "sender",
        "boss@vip.example.com",
    )
    assert clean_rule("tag", "#Security") == ("tag", "security")
    for kind, pattern in (
        ("colour", "red"),
        ("sender", "nobody"),
        ("domain", "localhost"),
        ("keyword", " * "),
    ):
        with pytest.raises(RuleError):
            clean_rule(kind, pattern)


# -- urgency rules: storage ------------------------------------------------------------------


def test_rules_are_added_removed_and_moved_in_order(session_factory: sessionmaker[Session]) -> None:
    add(session_factory, "domain", "vip.example.com")
    add(session_factory, "keyword", "outage")
    add(session_factory, "sender", "noreply@vip.example.com", urgent=False)
    with session_factory.begin() as session:
        move_rule(session, from_position=3, to_position=1, user=MANAGER, now=NIGHT)
    with session_factory() as session:
        assert [(r.position, r.pattern) for r in load_rules(session)] == [
            (1, "noreply@vip.example.com"),
            (2, "vip.example.com"),
            (3, "outage"),
        ]
    with session_factory.begin() as session:
        assert remove_rule(session, position=2, user=MANAGER, now=NIGHT).pattern == "vip.example.com"
        with pytest.raises(RuleError, match="numbered 1 to 2"):
            remove_rule(session, position=5, user=MANAGER, now=NIGHT)
    with session_factory() as session:
        assert [(r.position, r.pattern) for r in load_rules(session)] == [
            (1, "noreply@vip.example.com"),
            (2, "outage"),
        ]
        actions = session.scalars(select(Event.action).where(Event.action.like("urgency_rule_%"))).all()
        assert actions.count("urgency_rule_added") == 3 and "urgency_rule_moved" in actions


def test_rules_file_seeds_an_empty_table_once(session_factory: sessionmaker[Session]) -> None:
    path = ROOT / "urgency-rules.example.toml"
    with session_factory.begin() as session:
        assert seed_rules(session, path, now=NIGHT) == 7
    with session_factory.begin() as session:
        assert seed_rules(session, path, now=NIGHT) == 0  # not empty
        rules = load_rules(session)
        assert (rules[0].kind, rules[0].urgent) == ("sender", False)
        for position in range(len(rules), 0, -1):
            remove_rule(session, position=position, user=MANAGER, now=NIGHT)
    with session_factory.begin() as session:
        # A manager emptied the table on purpose: the file must not bring the rules back.
        assert seed_rules(session, path, now=NIGHT) == 0
        assert load_rules(session) == []


# -- triage: the automatic acknowledgement ------------------------------------------------------


def test_after_hours_ticket_gets_exactly_one_acknowledgement(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = ingest(session_factory, customer_mail(1, sender="ada@example.org", subject="Invoice"), NIGHT)
    [result] = triage(session_factory, settings, NIGHT)
    assert (result.after_hours, result.urgent, result.auto_reply) == (True, False, "auto_ack.en")
    assert triage(session_factory, settings, NIGHT + timedelta(minutes=1)) == []

    [ack] = auto_messages(session_factory)
    assert ack.template_name == "auto_ack.en"
    assert ["Auto-Submitted", "auto-replied"] in ack.headers
    assert NEXT_OPENING_EN in ack.text
    assert count(session_factory, AutoReply, AutoReply.ticket_id == ticket_id) == 1
    assert count(session_factory, OutboxItem, OutboxItem.kind == SMTP_SEND) == 1
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        # An acknowledgement claims nothing and answers nothing: the ticket waits for a person.
        assert (ticket.status, ticket.owner) == ("open", None)
        triaged = session.get(TicketTriage, ticket_id)
        assert triaged is not None and triaged.auto_reply == "auto_ack.en"
        replied = session.scalars(select(Event).where(Event.action == "replied")).one()
        assert replied.actor == "auto" and replied.data["automatic"] is True


def test_a_customer_writing_again_gets_no_second_acknowledgement(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    first = customer_mail(1, sender="ada@example.org", subject="Invoice")
    ingest(session_factory, first, NIGHT)
    triage(session_factory, settings, NIGHT)
    follow_up = customer_mail(2, sender="ada@example.org", subject="Re: Invoice [#1]", body="Any news?\n")
    ingest(session_factory, follow_up, NIGHT + timedelta(minutes=5))
    assert triage(session_factory, settings, NIGHT + timedelta(minutes=6)) == []
    assert len(auto_messages(session_factory)) == 1


def test_italian_customer_gets_the_italian_acknowledgement(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    body = "Buongiorno, non riesco ad accedere al mio account da ieri sera. Grazie per l'aiuto.\n"
    ingest(session_factory, customer_mail(1, subject="Accesso", body=body), NIGHT)
    [result] = triage(session_factory, settings, NIGHT)
    assert result.auto_reply == "auto_ack.it"
    [ack] = auto_messages(session_factory)
    assert NEXT_OPENING_IT in ack.text and "risposta automatica" in ack.text


def test_content_language_header_picks_the_language() -> None:
    message = Message(headers=[["Content-Language", "it-IT"]], text="Hello there, thanks", view_text="")
    assert detect_language(message) == "it"
    assert detect_language(Message(headers=[], text="Ciao", view_text="")) == "en"  # too little to go on
    assert detect_language(None) == "en"


def test_next_opening_is_written_in_the_teams_time_zone() -> None:
    from zoneinfo import ZoneInfo

    rome = ZoneInfo("Europe/Rome")
    friday_night = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert (
        format_opening(monday, friday_night, rome, "en") == "Monday 30 November at 09:00 (Europe/Rome time)"
    )
    assert (
        format_opening(monday, friday_night, rome, "it")
        == "lunedì 30 novembre alle 09:00 (ora di Europe/Rome)"
    )
    early = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 06:00 in Rome, the same local day
    assert format_opening(datetime(2026, 11, 24, 8, 0, tzinfo=UTC), early, rome, "en").startswith("today, ")
    new_year = format_opening(
        datetime(2027, 1, 4, 8, 0, tzinfo=UTC), datetime(2026, 12, 31, 20, 0, tzinfo=UTC), rome, "en"
    )
    assert new_year == "Monday 4 January 2027 at 09:00 (Europe/Rome time)"


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"X-Autoreply": "yes"},
    ],
)
def test_automatic_mail_never_gets_an_acknowledgement(
    session_factory: sessionmaker[Session], settings: Settings, headers: dict[str, str]
) -> None:
    ticket_id = ingest(session_factory, customer_mail(1, subject="Out of office", headers=headers), NIGHT)
    [result] = triage(session_factory, settings, NIGHT)
    assert result.auto_reply is None and "automatic mail" in result.withheld
    assert auto_messages(session_factory) == []
    with session_factory() as session:
        withheld = session.scalars(select(Event).where(Event.action == "auto_reply_withheld")).one()
        assert withheld.ticket_id == ticket_id


def test_a_bounce_never_gets_an_acknowledgement(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    bounce = customer_mail(
        1, sender="MAILER-DAEMON@mx.example.org", subject="Undelivered Mail Returned to Sender"
    )
    ingest(session_factory, bounce, NIGHT)
    [result] = triage(session_factory, settings, NIGHT)
    assert result.auto_reply is None and "bounce" in result.withheld
    assert auto_messages(session_factory) == []


def test_the_per_sender_cap_holds_across_tickets(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    # An auto-responder that opens a new ticket with every mail: 10 answers in 3 hours, then silence.
    for n in range(11):
        at = NIGHT + timedelta(minutes=10 * n)
        ingest(session_factory, customer_mail(n, sender="robot@example.org", subject=f"Ticket {n}"), at)
        triage(session_factory, settings, at)
    assert len(auto_messages(session_factory)) == 10
    with session_factory() as session:
        eleventh = session.scalars(
            select(TicketTriage).order_by(TicketTriage.ticket_id.desc()).limit(1)
        ).one()
        assert eleventh.auto_reply is None
        reason = (
            session.scalars(select(Event).where(Event.action == "auto_reply_withheld")).one().data["reason"]
        )
        assert "robot@example.org already got 10 automatic replies in the last 3 hours" in reason
    # Someone else is not held back by the robot.
    ingest(session_factory, customer_mail(20, sender="ada@example.org"), NIGHT + timedelta(minutes=105))
    assert triage(session_factory, settings, NIGHT + timedelta(minutes=105))[0].auto_reply == "auto_ack.en"
    # Once the oldest answers leave the window, the robot may get one again.
    later = NIGHT + timedelta(hours=3, minutes=1)
    ingest(session_factory, customer_mail(21, sender="robot@example.org", subject="Again"), later)
    assert triage(session_factory, settings, later)[0].auto_reply == "auto_ack.en"


def test_business_hours_mail_gets_no_acknowledgement(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ingest(session_factory, customer_mail(1), DAY)
    [result] = triage(session_factory, settings, DAY)
    assert (result.after_hours, result.auto_reply, result.withheld) == (False, None, "")
    assert auto_messages(session_factory) == []


def test_night_mail_triaged_after_opening_is_not_acknowledged(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    # The bot was down overnight: promising an answer "at 09:00" at 10:00 would be wrong.
    ingest(session_factory, customer_mail(1), NIGHT)
    [result] = triage(session_factory, settings, NIGHT + timedelta(hours=12))
    assert result.after_hours and result.auto_reply is None
    assert auto_messages(session_factory) == []


def test_auto_ack_setting_off_sends_nothing(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    ingest(session_factory, customer_mail(1), NIGHT)
    [result] = triage(
        session_factory, make_settings(database_url, **TRIAGE_SETTINGS, AUTO_ACK="false"), NIGHT
    )
    assert result.after_hours and result.auto_reply is None
    assert auto_messages(session_factory) == []


def test_tickets_older_than_two_days_are_left_alone(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ingest(session_factory, customer_mail(1), NIGHT - timedelta(days=3))
    assert triage(session_factory, settings, NIGHT) == []


# -- triage: urgent tickets ---------------------------------------------------------------------


def test_urgent_after_hours_ticket_is_paged_and_shows_why(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    add(session_factory, "keyword", "outage")
    ticket_id = ingest(session_factory, customer_mail(1, subject="Total outage <!channel>"), NIGHT)
    [result] = triage(session_factory, settings, NIGHT)
    assert (result.urgent, result.paged, result.reason) == (True, True, "keyword “outage” in the subject")
    assert result.auto_reply is None  # paged instead of acknowledged
    assert count(session_factory, Page, Page.ticket_id == ticket_id) == 1
    # Nobody is on the rota, so the managers are paged: one DM each, queued with the page.
    assert count(session_factory, OutboxItem, OutboxItem.kind == SLACK_PAGE) == 1
    assert count(session_factory, OutboxItem, OutboxItem.kind == SLACK_TICKET_REFRESH) == 1
    assert triage(session_factory, settings, NIGHT + timedelta(minutes=1)) == []
    assert count(session_factory, Page) == 1

    with session_factory() as session:
        card = ticket_card(session, ticket_id)
    assert card is not None and card.urgent_reason == "keyword “outage” in the subject"
    _, blocks = ticket_message(card)
    assert ":rotating_light: Urgent: keyword “outage” in the subject" in json.dumps(
        blocks, ensure_ascii=False
    )


def test_urgent_ticket_in_business_hours_is_marked_but_not_paged(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    add(session_factory, "domain", "vip.example.com")
    ticket_id = ingest(session_factory, customer_mail(1, sender="boss@vip.example.com"), DAY)
    [result] = triage(session_factory, settings, DAY)
    assert (result.urgent, result.paged) == (True, False)
    assert count(session_factory, Page) == 0
    with session_factory() as session:
        card = ticket_card(session, ticket_id)
    assert card is not None and card.urgent_reason == "sender domain vip.example.com"


def test_a_not_urgent_exception_keeps_the_vip_robot_quiet(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    add(session_factory, "domain", "vip.example.com")
    add(session_factory, "sender", "noreply@vip.example.com", urgent=False)
    with session_factory.begin() as session:
        move_rule(session, from_position=2, to_position=1, user=MANAGER, now=NIGHT)
    ingest(session_factory, customer_mail(1, sender="noreply@vip.example.com"), NIGHT)
    [result] = triage(session_factory, settings, NIGHT)
    assert (result.urgent, result.paged, result.reason) == (False, False, "sender noreply@vip.example.com")
    assert count(session_factory, Page) == 0


def test_rules_file_is_read_at_the_first_triage(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    settings = make_settings(
        database_url, **TRIAGE_SETTINGS, URGENCY_RULES_FILE=str(ROOT / "urgency-rules.example.toml")
    )
    ingest(session_factory, customer_mail(1, subject="Sistema giù", body="È urgente!\n"), NIGHT)
    [result] = triage(session_factory, settings, NIGHT)
    assert result.urgent and result.reason == "keyword “urgente” in the message"
    assert count(session_factory, UrgencyRule) == 7


# -- end to end: an email at night, an acknowledgement in the customer's inbox ---------------------


@pytest.fixture
def night_desk(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[Desk]:
    add_people(slack, {STAFF: "ada", MANAGER: "may"})
    with running_desk(
        slack,
        imap,
        database_url,
        clock=FrozenClock(NIGHT),
        MANAGERS=MANAGER,
        AUTO_ACK="true",  # said out loud: the harness may turn it off for the rest of the suite
    ) as desk:
        yield desk


@pytest.mark.timeout(120)
def test_mail_at_night_is_acknowledged_through_smtp(night_desk: Desk) -> None:
    smtp, imap = night_desk.smtp, night_desk.imap
    imap.append(customer_mail(1, sender="ada@example.org", sender_name="Ada Lovelace", subject="Billing"))
    caught = wait_until(lambda: smtp.mails, timeout=20, what="the acknowledgement at the SMTP server")
    [mail] = caught
    message = mail.message
    assert mail.rcpt_tos == ("ada@example.org",)
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["Subject"] == "Re: Billing [#1]"
    assert message["In-Reply-To"]
    body = message.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    assert "Hi Ada," in text and NEXT_OPENING_EN in text


@pytest.mark.timeout(120)
def test_mail_in_business_hours_gets_no_acknowledgement_end_to_end(
    imap: PymapServer, slack: SlackStandIn, database_url: str
) -> None:
    with SmtpCatcher() as smtp:
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=database_url,
            smtp_port=smtp.port,
            AUTO_ACK="true",
        )
        with running_bot(env, clock=FrozenClock(DAY)) as bot:
            imap.append(customer_mail(1))
            factory = bot.factory
            wait_until(lambda: count(factory, TicketTriage) == 1, timeout=20, what="triage")
            assert smtp.mails == []


@pytest.mark.timeout(120)
def test_rules_commands_are_for_managers(night_desk: Desk) -> None:
    staff, manager = night_desk.user(STAFF), night_desk.user(MANAGER)
    assert "Only managers" in staff.command("rules").json()["text"]
    assert "Only managers" in staff.command('rules add keyword "server down" urgent').json()["text"]

    answer = manager.command("rules add keyword “server down” urgent").json()
    assert "Added rule 1" in answer["text"]
    manager.command("rules add domain vip.example.com")
    manager.command("rules add sender noreply@vip.example.com not urgent")
    moved = manager.command("rules move 3 1").json()["blocks"]
    assert "Moved sender noreply@vip.example.com" in moved[0]["text"]["text"]
    lines = moved[2]["text"]["text"].splitlines()
    assert [line.split()[0] for line in lines] == ["*1.*", "*2.*", "*3.*"]
    assert "noreply@vip.example.com" in lines[0] and "not urgent" in lines[0]
    assert "server down" in lines[1] and "`vip.example.com`" in lines[2]
    assert "no rule 9" in manager.command("rules remove 9").json()["text"]
    assert "Removed rule 2" in manager.command("rules remove 2").json()["text"]
    assert "/support rules add" in manager.command("rules frobnicate").json()["text"]
    assert "`/support rules`" in manager.command("help").json()["text"]


def test_two_replicas_triaging_at_once_take_each_ticket_once(
    session_factory: sessionmaker[Session], settings: Settings, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's; SQLite has one writer at a time anyway")
    for n in range(3):
        ingest(session_factory, customer_mail(n, sender=f"c{n}@example.org"), NIGHT)
    with session_factory.begin() as first:
        taken = triage_pending(first, settings, settings.calendar(), NIGHT, page=pager(settings))
        # The first transaction still holds its rows: the second skips them instead of waiting.
        with session_factory.begin() as second:
            assert triage_pending(second, settings, settings.calendar(), NIGHT, page=pager(settings)) == []
    assert len(taken) == 3
    assert triage(session_factory, settings, NIGHT) == []
    assert len(auto_messages(session_factory)) == 3


def test_the_triage_worker_survives_a_failing_pass(
    session_factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.tickets.triage_worker as worker_module
    from bot.outbox.queue import notify_workers

    calls: list[datetime] = []

    def flaky(
        session: Session, settings: Settings, calendar: Any, now: datetime, *, page: Any, limit: int
    ) -> list[Any]:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return []

    monkeypatch.setattr(worker_module, "triage_pending", flaky)
    worker = worker_module.TriageWorker(
        session_factory, settings, FrozenClock(NIGHT), page=pager(settings), poll_seconds=30
    )
    worker.start()
    try:
        wait_until(lambda: len(calls) >= 1, what="the first pass")
        notify_workers()  # a commit elsewhere wakes it long before the poll interval
        wait_until(lambda: len(calls) >= 2, timeout=5, what="a pass after the failure")
    finally:
        worker.stop()
    assert worker._thread is not None and not worker._thread.is_alive()

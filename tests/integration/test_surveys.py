"""Satisfaction surveys: signed links, the sending job, and the customer's pages end to end.

Times are explicit: Monday 23 November 2026, 11:00 in Rome (business hours, so no
after-hours acknowledgement joins the mail), and surveys are due 60 minutes after a
resolution unless a test says otherwise.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.config import ConfigError, Settings
from bot.outbox.queue import SLACK_TICKET_NOTICE, SMTP_SEND
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack.survey_notices import answer_notice, survey_answer_notice
from bot.storage.models import AppSecret, Event, Message, OutboxItem, Survey, SurveyOptOut, Ticket
from bot.survey_http import MaskSurveyPaths
from bot.tickets.survey_answers import answered_count, record_answer
from bot.tickets.survey_links import LinkError, LinkExpired, link_key, read_link, sign_link, survey_key
from bot.tickets.surveys import CATCH_UP, send_due_surveys
from bot.tickets.template_store import save_template
from bot.tickets.workflow import claim_ticket, resolve_ticket, set_status
from tests.support import desk as support_desk
from tests.support.desk import add_people, running_desk
from tests.support.harness import CHANNEL, wait_until
from tests.support.mail import customer_mail, message_id_of
from tests.support.settings import make_settings
from tests.support.slack_requests import SlackUser
from tests.support.stored_tickets import ingest_one

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday 11:00 in Rome
ADA = "U0ADA"
PUBLIC = "https://support.example.com"
KEY = link_key("k" * 32)
_LINK = re.compile(r"https://support\.example\.com/survey/[A-Za-z0-9_-]+")


# -- signed links ---------------------------------------------------------------------------


def test_a_link_says_which_survey_which_answer_and_until_when() -> None:
    expires = NOW + timedelta(days=30)
    token = sign_link(KEY, 42, "yes", expires)
    assert re.fullmatch(r"[A-Za-z0-9_-]{62}", token)
    claim = read_link(KEY, token, NOW)
    assert (claim.survey_id, claim.action, claim.expires_at) == (42, "yes", expires)
    assert read_link(KEY, sign_link(KEY, 42, "no", expires), NOW).action == "no"


def test_a_link_of_another_key_another_survey_or_answer_is_refused() -> None:
    expires = NOW + timedelta(days=30)
    token = sign_link(KEY, 42, "yes", expires)
    with pytest.raises(LinkError):
        read_link(link_key("another key, just as long as the first"), token, NOW)
    # The survey id is inside the MAC: moving one survey's MAC onto another id fails.
    raw = base64.urlsafe_b64decode(token + "==")
    other = base64.urlsafe_b64decode(sign_link(KEY, 43, "yes", expires) + "==")
    spliced = base64.urlsafe_b64encode(other[:14] + raw[14:]).rstrip(b"=").decode()
    with pytest.raises(LinkError):
        read_link(KEY, spliced, NOW)


def test_an_answer_link_expires_and_an_opt_out_link_does_not() -> None:
    expires = NOW + timedelta(days=30)
    answer = sign_link(KEY, 42, "no", expires)
    with pytest.raises(LinkExpired) as caught:
        read_link(KEY, answer, expires)
    assert caught.value.claim.survey_id == 42
    opt_out = sign_link(KEY, 42, "unsubscribe", expires)
    assert read_link(KEY, opt_out, expires + timedelta(days=3650)).action == "unsubscribe"


_VALID = sign_link(KEY, 7, "yes", NOW + timedelta(days=30))
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. %"


@st.composite
def _mutations(draw: st.DrawFn) -> str:
    token = _VALID
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "append", "bitflip"]))
    if kind == "bitflip":
        raw = bytearray(base64.urlsafe_b64decode(token + "=="))
        bit = draw(st.integers(0, len(raw) * 8 - 1))
        raw[bit // 8] ^= 1 << (bit % 8)
        return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    at = draw(st.integers(0, len(token) - 1))
    char = draw(st.sampled_from(_ALPHABET))
    if kind == "replace":
        return token[:at] + char + token[at + 1 :]
    if kind == "insert":
        return token[:at] + char + token[at:]
    if kind == "delete":
        return token[:at] + token[at + 1 :]
    if kind == "truncate":
        return token[:at]
    return token + draw(st.text(_ALPHABET, min_size=1, max_size=4))


@hypothesis_settings(max_examples=500, deadline=None)
@given(_mutations())
def test_any_mutation_of_a_valid_link_is_refused(mutated: str) -> None:
    if mutated == _VALID:
        return  # replacing a character by itself
    with pytest.raises(LinkError) as caught:
        read_link(KEY, mutated, NOW)
    assert type(caught.value) is LinkError  # never "expired": that would mean the MAC held


def test_the_last_character_has_one_spelling() -> None:
    # Base64's last character carries two spare bits; a lenient decoder reads four
    # characters as the same bytes, so the token must be refused unless canonical.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for char in alphabet:
        twin = _VALID[:-1] + char
        if twin != _VALID:
            with pytest.raises(LinkError):
                read_link(KEY, twin, NOW)


def test_paths_with_tokens_are_masked_in_logs() -> None:
    import logging

    record = logging.LogRecord(
        "waitress", logging.ERROR, __file__, 1, "GET /survey/%s failed", (_VALID,), None
    )
    MaskSurveyPaths().filter(record)
    assert _VALID not in record.getMessage() and "/survey/***" in record.getMessage()


def test_survey_secret_must_be_long(database_url: str) -> None:
    with pytest.raises(ConfigError, match="SURVEY_SECRET"):
        survey_settings(database_url, SURVEY_SECRET="short")
    assert survey_settings(database_url).surveys is True
    assert survey_settings(database_url).survey_delay_minutes == 60
    assert survey_settings(database_url).survey_link_days == 30


# -- the sending job, against the database --------------------------------------------------


def survey_settings(database_url: str, **overrides: str) -> Settings:
    """The shared builder, in Rome, with the public URL survey links are made from."""
    return make_settings(database_url, **{"TIMEZONE": "Europe/Rome", "PUBLIC_URL": PUBLIC, **overrides})


@pytest.fixture
def settings(database_url: str) -> Settings:
    return survey_settings(database_url)


def ingest(factory: sessionmaker[Session], raw: bytes, now: datetime = NOW) -> int:
    return ingest_one(factory, raw, now)


def resolve(factory: sessionmaker[Session], ticket_id: int, at: datetime, user: str = ADA) -> None:
    with factory.begin() as session:
        resolve_ticket(session, ticket_id, user, at)


def reopen(factory: sessionmaker[Session], ticket_id: int, at: datetime) -> None:
    with factory.begin() as session:
        set_status(session, ticket_id, ADA, "open", at)


def run(factory: sessionmaker[Session], settings: Settings, at: datetime) -> tuple[list[int], list[str]]:
    with factory.begin() as session:
        result = send_due_surveys(session, settings, at)
    return list(result.sent), [why for _, why in result.skipped]


def surveys(factory: sessionmaker[Session], ticket_id: int) -> list[Survey]:
    with factory() as session:
        found = list(
            session.scalars(select(Survey).where(Survey.ticket_id == ticket_id).order_by(Survey.round))
        )
        session.expunge_all()
        return found


def survey_mails(factory: sessionmaker[Session], ticket_id: int) -> list[Message]:
    with factory() as session:
        found = list(
            session.scalars(
                select(Message).where(Message.ticket_id == ticket_id, Message.dedupe_key.like("survey:%"))
            )
        )
        session.expunge_all()
        return found


def test_a_survey_is_queued_once_after_the_delay(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    raw = customer_mail(1, sender="maria@example.org", sender_name="Maria Rossi", subject="Cannot sign in")
    ticket_id = ingest(session_factory, raw)
    resolve(session_factory, ticket_id, NOW)

    assert run(session_factory, settings, NOW + timedelta(minutes=59)) == ([], [])
    assert run(session_factory, settings, NOW + timedelta(minutes=60)) == ([1], [])
    assert run(session_factory, settings, NOW + timedelta(minutes=61)) == ([], [])  # never twice

    [survey] = surveys(session_factory, ticket_id)
    assert (survey.round, survey.agent, survey.status, survey.resolved_at) == (1, ADA, "sent", NOW)
    [mail] = survey_mails(session_factory, ticket_id)
    assert ["Auto-Submitted", "auto-generated"] in mail.headers
    assert mail.in_reply_to == message_id_of(raw).strip("<>")
    assert mail.template_name == "survey.en" and mail.author == "auto"
    links = _LINK.findall(mail.text)
    assert len(links) == 3 and mail.html is not None and all(link in mail.html for link in links)
    # Slack shows what the customer was asked, never the links that answer in their name.
    assert "Did we solve it?" in mail.view_text and not _LINK.search(mail.view_text)
    with session_factory() as session:
        queued = session.scalar(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.kind == SMTP_SEND)
        )
        assert queued == 1
        # The key was made once, in the database, for every replica to share.
        assert session.scalar(select(func.count()).select_from(AppSecret)) == 1


def test_a_reopened_resolution_gets_none_and_the_next_one_does(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = ingest(session_factory, customer_mail(1))
    resolve(session_factory, ticket_id, NOW)
    reopen(session_factory, ticket_id, NOW + timedelta(minutes=10))
    resolve(session_factory, ticket_id, NOW + timedelta(minutes=30), user="U0BOB")

    sent, skipped = run(session_factory, settings, NOW + timedelta(minutes=60))
    assert sent == [] and skipped == ["the ticket was reopened before the survey was due"]
    assert run(session_factory, settings, NOW + timedelta(minutes=90)) == ([1], [])
    first, second = surveys(session_factory, ticket_id)
    assert (first.round, first.status, first.agent) == (1, "skipped", ADA)
    assert (second.round, second.status, second.agent) == (2, "sent", "U0BOB")


def test_no_survey_to_automatic_mail_opted_out_customers_or_when_off(
    session_factory: sessionmaker[Session], database_url: str, settings: Settings
) -> None:
    auto = ingest(session_factory, customer_mail(1, headers={"Auto-Submitted": "auto-replied"}))
    opted = ingest(session_factory, customer_mail(2, sender="done@example.org"))
    with session_factory.begin() as session:
        session.add(SurveyOptOut(email="done@example.org", at=NOW))
    for ticket_id in (auto, opted):
        resolve(session_factory, ticket_id, NOW)
    sent, skipped = run(session_factory, settings, NOW + timedelta(hours=1))
    assert sent == []
    assert skipped == [
        "the ticket came from automatic mail (auto-submitted)",
        "done@example.org asked for no more surveys",
    ]

    off = survey_settings(database_url, SURVEYS="false")
    third = ingest(session_factory, customer_mail(3))
    resolve(session_factory, third, NOW + timedelta(hours=1))
    assert run(session_factory, off, NOW + timedelta(hours=2)) == ([], ["surveys are off (SURVEYS=false)"])
    assert survey_mails(session_factory, auto) + survey_mails(session_factory, third) == []


def test_resolutions_from_long_ago_are_left_alone(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = ingest(session_factory, customer_mail(1))
    resolve(session_factory, ticket_id, NOW)
    # Switching surveys on, or a bot down for days, must not mail the whole history.
    assert run(session_factory, settings, NOW + timedelta(hours=1) + CATCH_UP) == ([], [])
    assert surveys(session_factory, ticket_id) == []


def test_the_survey_speaks_the_customers_language(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    raw = customer_mail(
        1,
        subject="Non riesco ad accedere",
        body="Buongiorno, non riesco ad accedere al mio account. Grazie\n",
    )
    ticket_id = ingest(session_factory, raw)
    resolve(session_factory, ticket_id, NOW)
    run(session_factory, settings, NOW + timedelta(hours=1))
    [mail] = survey_mails(session_factory, ticket_id)
    assert mail.template_name == "survey.it"
    assert "Abbiamo risolto il problema?" in mail.text and "Sì, risolto:" in mail.text


def test_a_template_edited_without_links_still_gets_them(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        save_template(
            session,
            name="survey.en",
            title="Survey",
            language="en",
            tags=[],
            text="Hi {{ customer_first_name }}, did we solve it?\n",
            html=None,
            user="U0MAY",
            now=NOW,
        )
    ticket_id = ingest(session_factory, customer_mail(1, sender_name="Maria Rossi"))
    resolve(session_factory, ticket_id, NOW)
    run(session_factory, settings, NOW + timedelta(hours=1))
    [mail] = survey_mails(session_factory, ticket_id)
    assert mail.text.startswith("Hi Maria, did we solve it?") and len(_LINK.findall(mail.text)) == 3


def test_answers_keep_the_last_and_tell_the_thread_once(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = ingest(session_factory, customer_mail(1))
    resolve(session_factory, ticket_id, NOW)
    run(session_factory, settings, NOW + timedelta(hours=1))
    [survey] = surveys(session_factory, ticket_id)
    at = NOW + timedelta(hours=2)

    def answer(solved: bool, comment: str | None = None) -> None:
        with session_factory.begin() as session:
            record_answer(
                session, survey.id, solved=solved, comment=comment, now=at, write_notice=survey_answer_notice
            )

    answer(True)
    answer(True)  # the same click again: nothing new to say
    answer(False)
    answer(False, "Still \x00broken <here>\r\n& there")
    with session_factory() as session:
        notices = [
            item.payload["text"]
            for item in session.scalars(
                select(OutboxItem).where(OutboxItem.kind == SLACK_TICKET_NOTICE).order_by(OutboxItem.id)
            )
        ]
        stored = session.get(Survey, survey.id)
        assert stored is not None and (stored.solved, stored.comment) == (
            False,
            "Still broken <here>\n& there",
        )
        assert answered_count(session, ADA) == (1, 0)
        assert [
            e.action for e in session.scalars(select(Event).where(Event.action == "survey_answered"))
        ] == ["survey_answered"] * 3
    assert notices == [
        f":+1: The customer says it is solved (resolved by <@{ADA}>).",
        f":-1: The customer changed their answer: it is not solved yet (resolved by <@{ADA}>)."
        " The ticket is open again.",
        ":speech_balloon: The customer added a comment to their answer (it is not solved yet).\n"
        ">Still broken &lt;here&gt;\n>&amp; there",
    ]


def test_not_solved_reopens_the_resolution_it_asked_about_and_only_that(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    first = ingest(session_factory, customer_mail(1))
    second = ingest(session_factory, customer_mail(2))
    with session_factory.begin() as session:
        claim_ticket(session, first, ADA, NOW)
    for ticket_id in (first, second):
        resolve(session_factory, ticket_id, NOW)
    run(session_factory, settings, NOW + timedelta(hours=1))
    [survey_one] = surveys(session_factory, first)
    [survey_two] = surveys(session_factory, second)
    # The second ticket was reopened and resolved again before its customer answered.
    with session_factory.begin() as session:
        set_status(session, second, ADA, "open", NOW + timedelta(hours=2))
        set_status(session, second, ADA, "resolved", NOW + timedelta(hours=3))
    at = NOW + timedelta(hours=4)
    with session_factory.begin() as session:
        one = record_answer(
            session, survey_one.id, solved=False, comment=None, now=at, write_notice=survey_answer_notice
        )
        two = record_answer(
            session, survey_two.id, solved=False, comment=None, now=at, write_notice=survey_answer_notice
        )
        again = record_answer(
            session, survey_one.id, solved=True, comment=None, now=at, write_notice=survey_answer_notice
        )
    assert one is not None and one.reopened
    assert two is not None and not two.reopened
    assert again is not None and not again.reopened
    with session_factory() as session:
        reopened = session.get(Ticket, first)
        untouched = session.get(Ticket, second)
        assert reopened is not None and untouched is not None
        # Ada resolved it, and keeps it: she knows the case.
        assert (reopened.status, reopened.owner, reopened.resolved_at) == ("claimed", ADA, None)
        assert untouched.status == "resolved"
        events = [
            (e.action, e.actor)
            for e in session.scalars(
                select(Event).where(Event.ticket_id == first, Event.action == "reopened")
            )
        ]
        assert len(events) == 1 and events[0][1].startswith("customer:")


def test_the_notice_quotes_every_line() -> None:
    text = answer_notice(True, changed=False, fresh=True, comment="a\n\n<!channel>", agent=None)
    assert text == ":+1: The customer says it is solved.\n>a\n>\n>&lt;!channel&gt;"


# -- end to end: the real bot, IMAP in, SMTP out, links over HTTP ----------------------------


class Desk(support_desk.Desk):
    clock: FrozenClock

    def resolve(self, number: int) -> None:
        message = self.ticket_message(number)

        def resolvable() -> dict[str, Any] | None:
            latest = {**self.slack.thread(CHANNEL, message["ts"])[0], "channel": CHANNEL}
            return latest if "ticket_resolve" in json.dumps(latest.get("blocks")) else None

        latest = wait_until(resolvable, what=f"a Resolve button on #{number}")
        assert SlackUser(self.bot.url, self.slack, ADA).click(latest, "ticket_resolve").status == 200
        wait_until(lambda: self.ticket(number).status == "resolved", what=f"#{number} resolved")

    def survey(self, number: int, round_: int = 1) -> Survey | None:
        with self.bot.factory() as session:
            found = session.scalar(
                select(Survey).join(Ticket).where(Ticket.number == number, Survey.round == round_)
            )
            if found is not None:
                session.expunge(found)
            return found

    def thread_texts(self, number: int) -> list[str]:
        return [
            str(m.get("text", "")) for m in self.slack.thread(CHANNEL, self.ticket_message(number)["ts"])[1:]
        ]

    def wait_for_notice(self, number: int, text: str) -> str:
        return wait_until(
            lambda: next((t for t in self.thread_texts(number) if text in t), None),
            what=f"“{text}” in the thread of #{number}",
        )

    def local(self, link: str) -> str:
        """The public link, sent to this bot's own port."""
        return self.bot.url + urllib.parse.urlsplit(link).path


def http(
    url: str, method: str = "GET", form: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def links_of(mail: EmailMessage) -> dict[str, str]:
    body = mail.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    yes = re.search(r"Yes, solved:\s+(\S+)", text)
    no = re.search(r"No, not yet:\s+(\S+)", text)
    unsubscribe = re.search(r"no more of these questions:\s+(\S+)", text)
    assert yes and no and unsubscribe, text
    return {"yes": yes.group(1), "no": no.group(1), "unsubscribe": unsubscribe.group(1)}


@pytest.fixture
def desk(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[Desk]:
    add_people(slack, {ADA: "ada"})
    with running_desk(
        slack,
        imap,
        database_url,
        clock=FrozenClock(NOW),
        kind=Desk,
        PUBLIC_URL=PUBLIC,
        AUTO_ACK="false",
        SURVEY_DELAY_MINUTES="60",
    ) as running:
        yield running


@pytest.mark.timeout(180)
def test_resolve_survey_answer_comment_and_opt_out_end_to_end(desk: Desk) -> None:
    raw = customer_mail(1, sender="maria@example.org", sender_name="Maria Rossi", subject="Cannot sign in")
    desk.imap.append(raw)
    desk.resolve(1)
    assert desk.bot.scheduler.get_job("send_surveys") is not None

    desk.clock.advance(timedelta(minutes=59))
    desk.bot.jobs.send_surveys()
    assert desk.survey(1) is None
    desk.clock.advance(timedelta(minutes=1))
    desk.bot.jobs.send_surveys()

    [caught] = wait_until(lambda: desk.smtp.mails, what="the survey at the SMTP server")
    mail = caught.message
    assert caught.rcpt_tos == ("maria@example.org",)
    assert mail["Subject"] == "Re: Cannot sign in [#1]"
    assert mail["In-Reply-To"] == message_id_of(raw)
    assert mail["Auto-Submitted"] == "auto-generated"
    links = links_of(mail)
    assert all(link.startswith(f"{PUBLIC}/survey/") for link in links.values())
    html_part = mail.get_body(("html",))
    assert html_part is not None and links["yes"] in str(html_part.get_content())
    # The survey's copy in the thread hides the links.
    desk.wait_for_notice(1, "Did we solve it?")
    assert not any(PUBLIC in t for t in desk.thread_texts(1))

    # A click as the mail arrives may be a scanner's prefetch: it shows the page, records nothing.
    status, headers, page = http(desk.local(links["no"]))
    assert status == 200 and "Your answer: No, not yet." in page and desk.survey(1).solved is None  # type: ignore[union-attr]
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    )
    assert headers["Referrer-Policy"] == "no-referrer"
    assert http(desk.local(links["yes"]), method="HEAD")[0] == 200 and desk.survey(1).solved is None  # type: ignore[union-attr]

    # Later, one click answers.
    desk.clock.advance(timedelta(minutes=10))
    status, _, page = http(desk.local(links["yes"]))
    assert status == 200 and "Thank you" in page and "Yes, solved" in page
    assert desk.survey(1).solved is True  # type: ignore[union-attr]
    desk.wait_for_notice(1, f":+1: The customer says it is solved (resolved by <@{ADA}>).")
    assert http(desk.local(links["yes"]))[0] == 200  # the same click again changes nothing

    # Links we did not make, or not for this survey, or too old: refused, nothing recorded.
    token = urllib.parse.urlsplit(links["no"]).path.rsplit("/", 1)[1]
    raw_token = bytearray(base64.urlsafe_b64decode(token + "=="))
    raw_token[20] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw_token)).rstrip(b"=").decode()
    with desk.bot.factory() as session:
        key = survey_key(session, desk.bot.settings)
    assert key is not None
    survey_id = desk.survey(1).id  # type: ignore[union-attr]
    far = desk.clock.now() + timedelta(days=30)
    expired = sign_link(key, survey_id, "no", desk.clock.now() - timedelta(seconds=1))
    for bad, expected in (
        (flipped, 404),
        (sign_link(key, survey_id + 1, "no", far), 404),  # a genuine signature, for no survey of ours
        (sign_link(link_key("x" * 40), survey_id, "no", far), 404),
        (expired, 410),
        ("not-a-token", 404),
    ):
        for method in ("GET", "POST"):
            form = {"comment": "forged"} if method == "POST" else None
            status, _, page = http(f"{desk.bot.url}/survey/{bad}", method=method, form=form)
            assert status == expected, (bad, method, status)
    not_found = http(f"{desk.bot.url}/survey/{flipped}")[2]
    assert not_found == http(f"{desk.bot.url}/survey/nothing")[2]  # one page for every unknown link
    assert desk.survey(1).solved is True and desk.survey(1).comment is None  # type: ignore[union-attr]

    # Changing one's mind: the last answer wins, and the thread says so.
    status, _, page = http(desk.local(links["no"]))
    assert status == 200 and desk.survey(1).solved is False  # type: ignore[union-attr]
    notice = desk.wait_for_notice(1, ":-1: The customer changed their answer: it is not solved yet")
    assert notice.endswith("The ticket is open again.")  # "not solved" undoes the resolution
    assert desk.ticket(1).status in ("open", "claimed")

    # A comment from the page: stored, escaped and quoted in the thread.
    status, _, page = http(
        desk.local(links["no"]), method="POST", form={"comment": "Still <!channel> & slow"}
    )
    assert status == 200 and "Your comment has reached the team." in page
    assert "Still &lt;!channel&gt; &amp; slow" in page  # back in the box, escaped
    notice = desk.wait_for_notice(1, ":speech_balloon:")
    assert notice.endswith(">Still &lt;!channel&gt; &amp; slow")
    assert http(desk.local(links["no"]), method="POST", form={"comment": "x" * 2001})[0] == 400
    assert desk.survey(1).comment == "Still <!channel> & slow"  # type: ignore[union-attr]
    with desk.bot.factory() as session:
        assert answered_count(session, ADA) == (1, 0)

    # Opting out: the link asks first, the button stops the surveys.
    status, _, page = http(desk.local(links["unsubscribe"]))
    assert status == 200 and "maria@example.org" in page and "Stop the questions" in page
    with desk.bot.factory() as session:
        assert session.get(SurveyOptOut, "maria@example.org") is None
    assert http(desk.local(links["unsubscribe"]), method="POST", form={})[0] == 200
    with desk.bot.factory() as session:
        assert session.get(SurveyOptOut, "maria@example.org") is not None

    # The next resolution of the same customer (the ticket is open again) gets no survey.
    desk.resolve(1)
    desk.clock.advance(timedelta(hours=2))
    desk.bot.jobs.send_surveys()
    second = desk.survey(1, round_=2)
    assert second is not None and second.status == "skipped"
    assert len(desk.smtp.mails) == 1


@pytest.mark.timeout(180)
def test_reopened_or_automatic_tickets_get_no_survey_end_to_end(desk: Desk) -> None:
    desk.imap.append(customer_mail(1, sender="ada@example.org", subject="Printer"))
    desk.imap.append(customer_mail(2, sender="robot@example.org", headers={"Auto-Submitted": "auto-replied"}))
    desk.resolve(1)
    desk.resolve(2)
    # The customer writes again before the survey is due: the resolution did not hold.
    first_id = desk.ticket(1)
    with desk.bot.factory() as session:
        parent = session.scalars(select(Message).where(Message.ticket_id == first_id.id)).first()
        assert parent is not None and parent.message_id is not None
        parent_id = parent.message_id
    desk.imap.append(customer_mail(3, sender="ada@example.org", in_reply_to=f"<{parent_id}>"))
    wait_until(lambda: desk.ticket(1).status != "resolved", what="the customer's answer to reopen #1")

    desk.clock.advance(timedelta(hours=1))
    desk.bot.jobs.send_surveys()
    assert desk.survey(1) is not None and desk.survey(1).status == "skipped"  # type: ignore[union-attr]
    assert desk.survey(2) is not None and desk.survey(2).status == "skipped"  # type: ignore[union-attr]
    assert desk.smtp.mails == []

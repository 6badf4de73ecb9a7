"""Phone pages end to end: the real bot, the real `twilio` client pointed at a local Twilio
stand-in, and the stand-in calling the bot's webhooks with signed requests, as Twilio would.

A page goes DM → call → keypress 1 → acknowledged, and nothing else goes out; no answer →
the backup; keypress 2 → the next level at once; an SMS acknowledges from a registered
number only; forged, replayed and late keypresses change nothing; registration by code.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack.paging import ACTION_ACK, step_effects
from bot.storage.db import transaction
from bot.storage.models import Event, OutboxItem, Page, RotaDuty, Ticket
from bot.storage.models_phone import Phone, PhoneDelivery
from rota import paging, store
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.night_rota import ADA, BOB, MAY, NIGHT, rota_with_ada_on_call, urgent_ticket
from tests.support.slack_requests import SlackUser
from tests.support.twilio_stand_in import Resource, TwilioStandIn

PHONES = {ADA: "+393331111111", BOB: "+393332222222", MAY: "+393333333333"}
POLICY = "oncall: slack, call+2m; backup: slack, call+2m; managers: slack, sms"


@dataclass
class Live:
    bot: SupportBot
    slack: SlackStandIn
    twilio: TwilioStandIn
    clock: FrozenClock
    public_url: str

    def tick(self, minutes: float = 0) -> None:
        # Calls and SMS delivered and recorded first: on PostgreSQL, recording one (a row
        # referencing the page) holds a key lock on the page, which the tick's SKIP LOCKED
        # would pass over until its next run, 15 s later.
        wait_until(self.phones_quiet, what="calls and SMS delivered")
        self.clock.advance(timedelta(minutes=minutes))
        self.bot.jobs.paging_tick()

    def phones_quiet(self) -> bool:
        with self.bot.factory() as session:
            pending = session.scalar(
                select(OutboxItem.id).where(
                    OutboxItem.kind.startswith("phone."), OutboxItem.status == "pending"
                )
            )
            return pending is None

    def call_to(self, user: str, count: int = 1) -> Resource:
        calls = wait_until(
            lambda: len(found := self.twilio.calls(PHONES[user])) >= count and found,
            what=f"call {count} to {user}",
        )
        return sorted(calls, key=lambda c: c.created)[count - 1]

    def page(self) -> Page:
        with self.bot.factory() as session:
            page = session.scalar(select(Page))
            assert page is not None
            session.expunge(page)
            return page


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[Live]:
    with (
        SlackStandIn(channels=(CHANNEL,)) as slack,
        PymapServer(tmp_path / "imap") as imap,
        TwilioStandIn() as twilio,
    ):
        for user, name in ((ADA, "ada"), (BOB, "bob"), (MAY, "may")):
            slack.add_user(user, name, name.title(), channels=(CHANNEL,))
        port = free_port()
        public_url = f"http://127.0.0.1:{port}"
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=database_url,
            MANAGERS=MAY,
            HTTP_PORT=str(port),
            PUBLIC_URL=public_url,
            PAGE_POLICY=POLICY,
            PAGE_REPEAT_MINUTES="5",
            **twilio.env(),
        )
        clock = FrozenClock(NIGHT)
        with running_bot(env, clock=clock) as bot:
            # The roster first (May is staff too), so the bot's own sync at start cannot race
            # the plan; then Bob is made the backup: the duty after Ada's is his.
            bot.jobs.sync_roster()
            rota_with_ada_on_call(bot.factory, bot.settings)
            with transaction(bot.factory) as session:
                ada = store.duty_at(session, NIGHT)
                assert ada is not None
                following = session.scalar(select(RotaDuty).where(RotaDuty.start == ada.end))
                assert following is not None
                following.user_id = BOB
                for user, number in PHONES.items():
                    session.add(
                        Phone(user_id=user, number=number, confirmed_at=NIGHT, code_attempts=0, codes_sent=0)
                    )
            yield Live(bot, slack, twilio, clock, public_url)


def start(live: Live) -> int:
    ticket_id = urgent_ticket(live.bot.factory)
    with transaction(live.bot.factory) as session:
        step = paging.start_page(
            session, ticket_id=ticket_id, now=live.clock.now(), settings=live.bot.settings
        )
        assert step is not None and step.channels == ("slack",)
        step_effects(session, live.bot.settings, step, live.clock.now())
    live.bot.jobs.paging_tick()
    return ticket_id


def page_dms(live: Live, user: str) -> list[dict]:
    return [m for m in live.slack.dms(user) if "Urgent ticket" in m.get("text", "")]


def test_dm_then_call_then_keypress_1_acknowledges_and_every_channel_stops(live: Live) -> None:
    ticket_id = start(live)
    wait_until(lambda: page_dms(live, ADA), what="Ada's page DM")
    assert live.twilio.calls() == []  # the call waits for its two minutes
    live.tick(2)
    call = live.call_to(ADA)
    assert call.get("From") == "+390212345678"
    assert re.fullmatch(re.escape(live.public_url) + r"/twilio/voice\?o=\d+", call.get("Url") or "")
    said = live.twilio.answer(call, "1")
    assert said[0].startswith("Urgent support email, ticket 1, from ") and said[0].endswith(
        ": Server down 1."
    )
    assert any("Acknowledged" in s for s in said)
    page = live.page()
    assert page.status == "acknowledged" and page.acknowledged_by == ADA
    # Nothing more: no call, DM or SMS to anyone, however long the night goes on.
    for _ in range(6):
        live.tick(5)
    assert len(live.twilio.calls()) == 1 and live.twilio.messages() == []
    assert page_dms(live, BOB) == [] and page_dms(live, MAY) == []

    def timeline() -> list[str]:
        with live.bot.factory() as session:
            row = session.scalar(select(PhoneDelivery).where(PhoneDelivery.sid == call.sid))
            return [entry["status"] for entry in row.timeline] if row else []

    wait_until(lambda: timeline()[-1:] == ["completed"], what="the call's last status")
    assert timeline() == ["queued", "ringing", "in-progress", "completed"]
    with live.bot.factory() as session:
        actions = session.scalars(select(Event.action).where(Event.ticket_id == ticket_id)).all()
    assert "page_call_status" in actions and "page_acknowledged" in actions


def test_a_slack_acknowledgement_cancels_a_call_still_ringing(live: Live) -> None:
    start(live)
    live.tick(2)
    call = live.call_to(ADA)
    live.twilio.status(call, "ringing")
    wait_until(live.phones_quiet, what="the call recorded")
    dm = {**page_dms(live, ADA)[-1], "channel": live.slack.dm_channels[ADA]}
    SlackUser(live.bot.url, live.slack, ADA).click(dm, ACTION_ACK)
    wait_until(lambda: call.status == "canceled", what="Twilio asked to cancel the ringing call")
    assert live.page().status == "acknowledged"


def test_a_slack_acknowledgement_stops_the_call_still_to_come(live: Live) -> None:
    start(live)
    with transaction(live.bot.factory) as session:
        paging.acknowledge(session, live.page().id, user=ADA, now=live.clock.now())
    live.tick(2)
    live.tick(10)
    assert live.twilio.calls() == []


def test_no_answer_goes_to_the_backup_and_keypress_2_passes_to_the_managers(live: Live) -> None:
    ticket_id = start(live)
    live.tick(2)
    live.twilio.no_answer(live.call_to(ADA))
    live.tick(5)  # Ada's level is over: Bob, the backup
    wait_until(lambda: page_dms(live, BOB), what="Bob's page DM")
    live.tick(2)
    said = live.twilio.answer(live.call_to(BOB), "2")
    assert any("Passed to the next person" in s for s in said)
    # The managers at once, not after Bob's wait: May's DM and SMS.
    wait_until(lambda: page_dms(live, MAY), what="May's page DM")
    sms = wait_until(lambda: live.twilio.messages(PHONES[MAY]), what="May's SMS")[0]
    assert "Reply '1 1'" in (sms.get("Body") or "")
    # An SMS from a number nobody registered does nothing; May's own acknowledges.
    live.twilio.sms_in(f"{live.public_url}/twilio/sms", "+393339999999", "1 1")
    assert live.page().status == "active"
    code, reply = live.twilio.sms_in(f"{live.public_url}/twilio/sms", PHONES[MAY], "ack 1")
    assert code == 200 and "Acknowledged ticket 1" in reply
    page = live.page()
    assert page.status == "acknowledged" and page.acknowledged_by == MAY
    with live.bot.factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        statuses = [
            e.data.get("status")
            for e in session.scalars(select(Event).where(Event.action == "page_call_status"))
            if e.data.get("user") == ADA
        ]
    assert "no-answer" in statuses
    with live.bot.factory() as session:
        notices = [row.payload.get("text", "") for row in session.scalars(select(OutboxItem))]
    assert f":telephone_receiver: The call to <@{ADA}>: no answer." in notices


def test_forged_replayed_and_late_keypresses_change_nothing(live: Live) -> None:
    start(live)
    live.tick(2)
    call = live.call_to(ADA)
    url, fields = live.twilio.gather_request(call, "1")
    # Unsigned, signed with another token, or signed over other fields: 403, nothing done.
    assert live.twilio.post(url, fields, signature="")[0] == 403
    forged = TwilioStandIn(auth_token="not-the-real-token-000000000000").sign(url, fields)
    assert live.twilio.post(url, fields, signature=forged)[0] == 403
    assert live.twilio.post(url, {**fields, "Digits": "2"}, signature=live.twilio.sign(url, fields))[0] == 403
    assert live.page().status == "active"
    # Signed: acknowledged. The very same request again: refused.
    assert live.twilio.post(url, fields)[0] == 200
    assert live.page().status == "acknowledged"
    assert live.twilio.post(url, fields)[0] == 403
    # A keypress on another call of a page that is over hears so, and changes nothing.
    late_url, late = live.twilio.gather_request(call, "2")
    code, twiml = live.twilio.post(late_url, {**late, "CallSid": "CA" + "f" * 32})
    assert code == 200 and "already over" in twiml
    assert live.page().acknowledged_by == ADA


def test_registration_by_code_sent_by_sms(live: Live) -> None:
    user = SlackUser(live.bot.url, live.slack, BOB)
    answer = user.command("phone +39 333 444 5566", "/oncall").json()
    assert "+393334445566" in answer["text"]
    sms = wait_until(lambda: live.twilio.messages("+393334445566"), what="the code by SMS")[0]
    code = re.search(r"\b(\d{6})\b", sms.get("Body") or "")
    assert code is not None
    wrong = "000000" if code.group(1) != "000000" else "111111"
    assert "not right" in user.command(f"phone confirm {wrong}", "/oncall").json()["text"]
    assert "confirmed" in user.command(f"phone confirm {code.group(1)}", "/oncall").json()["text"]
    with live.bot.factory() as session:
        phone = session.get(Phone, BOB)
        assert phone is not None and phone.number == "+393334445566" and phone.code_hash is None
        sms_rows = session.scalars(select(OutboxItem).where(OutboxItem.kind == "phone.sms")).all()
        assert sms_rows and all(code.group(1) not in str(row.payload) for row in sms_rows)
    assert "not a phone number" in user.command("phone 12", "/oncall").json()["text"]
    assert "Forgot" in user.command("phone remove", "/oncall").json()["text"]
    with live.bot.factory() as session:
        assert session.get(Phone, BOB).number is None  # type: ignore[union-attr]


def test_oncall_test_pages_yourself_through_every_channel(live: Live) -> None:
    user = SlackUser(live.bot.url, live.slack, ADA)
    answer = user.command("test", "/oncall").json()
    assert "Test page on its way: Slack, a call, an SMS" in answer["text"]
    wait_until(lambda: any("Test page" in m.get("text", "") for m in live.slack.dms(ADA)), what="the DM")
    call = live.call_to(ADA)
    said = live.twilio.answer(call, "1")
    assert "test page" in said[0].lower()
    wait_until(
        lambda: any("test call worked" in m.get("text", "") for m in live.slack.dms(ADA)), what="confirmed"
    )
    assert wait_until(lambda: live.twilio.messages(PHONES[ADA]), what="the SMS")
    with live.bot.factory() as session:
        assert session.scalar(select(Page)) is None  # not a page: nothing counted


def test_twilio_busy_is_retried_after_its_retry_after_and_a_bad_number_set_aside(live: Live) -> None:
    start(live)
    live.twilio.refusals.append((429, "30"))
    live.clock.advance(timedelta(minutes=2))
    live.bot.jobs.paging_tick()

    def call_row() -> OutboxItem | None:
        with live.bot.factory() as session:
            row = session.scalar(select(OutboxItem).where(OutboxItem.kind == "phone.call"))
            return row if row is not None and row.attempts >= 1 and row.last_error else None

    row = wait_until(call_row, what="the refused try recorded")
    assert "429" in (row.last_error or "") and row.status == "pending"
    assert row.next_attempt_at >= live.clock.now() + timedelta(seconds=30)
    assert live.twilio.calls() == []
    live.clock.advance(timedelta(seconds=31))
    live.call_to(ADA)
    assert len(live.twilio.calls()) == 1
    # A number Twilio refuses as invalid (400, code 21211) is set aside, not retried for ever.
    with transaction(live.bot.factory) as session:
        session.get(Phone, BOB).number = "+1"  # type: ignore[union-attr]
    live.twilio.no_answer(live.call_to(ADA))
    live.tick(5)
    live.tick(2)

    def dead() -> bool:
        with live.bot.factory() as session:
            return (
                session.scalar(
                    select(OutboxItem.id).where(OutboxItem.kind == "phone.call", OutboxItem.status == "dead")
                )
                is not None
            )

    wait_until(dead, what="the refused call set aside")
    assert len(live.twilio.calls()) == 1


def test_without_a_public_address_calls_still_go_out_reading_the_page(
    tmp_path: Path, database_url: str
) -> None:
    """No PUBLIC_URL: the call carries its TwiML (the page read out), with no webhook to press
    a key into; authenticated here with an API key instead of the auth token."""
    with (
        SlackStandIn(channels=(CHANNEL,)) as slack,
        PymapServer(tmp_path / "imap") as imap,
        TwilioStandIn() as twilio,
    ):
        key_sid, key_secret = "SK" + "c" * 32, "api-key-secret-value"
        twilio.api_keys[key_sid] = key_secret
        slack.add_user(ADA, "ada", "Ada", channels=(CHANNEL,))
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=database_url,
            MANAGERS=MAY,
            PAGE_POLICY="oncall: call",
            TWILIO_ACCOUNT_SID=twilio.account_sid,
            TWILIO_API_KEY_SID=key_sid,
            TWILIO_API_KEY_SECRET=key_secret,
            TWILIO_FROM="+390212345678",
            TWILIO_API_URL=twilio.url,
        )
        clock = FrozenClock(NIGHT)
        with running_bot(env, clock=clock) as bot:
            bot.jobs.sync_roster()
            rota_with_ada_on_call(bot.factory, bot.settings)
            with transaction(bot.factory) as session:
                session.add(
                    Phone(user_id=ADA, number=PHONES[ADA], confirmed_at=NIGHT, code_attempts=0, codes_sent=0)
                )
            ticket_id = urgent_ticket(bot.factory)
            with transaction(bot.factory) as session:
                step = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, settings=bot.settings)
                assert step is not None
                step_effects(session, bot.settings, step, NIGHT)
            bot.jobs.paging_tick()
            call = wait_until(lambda: twilio.calls(PHONES[ADA]), what="the call")[0]
    assert call.get("Url") is None and call.get("StatusCallback") is None
    twiml = call.get("Twiml") or ""
    assert twiml.count("Urgent support email, ticket 1, from ") == 2 and "<Gather" not in twiml

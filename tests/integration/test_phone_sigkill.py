"""SIGKILL between Twilio accepting a call and our commit: the restarted bot makes no second call.

The Twilio stand-in records the call and then holds its answer, so the bot is killed with
the call placed at Twilio and nothing of it recorded on our side (the outbox row counted
one try, as the worker counts it before the effect). On restart the row is tried again:
the handler looks in Twilio's list of calls to that number first and adopts the call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.outbox.queue import PHONE_CALL
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack.paging import step_effects
from bot.storage.db import make_engine, make_sessionmaker, transaction
from bot.storage.models import OutboxItem, RotaDuty
from bot.storage.models_phone import Phone, PhoneDelivery
from rota.paging import start_page
from tests.support.harness import CHANNEL, BotProcess, bot_env, wait_until
from tests.support.night_rota import ADA, MAY, urgent_ticket
from tests.support.settings import make_settings
from tests.support.twilio_stand_in import TwilioStandIn

ADA_PHONE = "+393331111111"
POLICY = "oncall: call; managers: slack"


def test_a_call_twilio_accepted_before_a_sigkill_is_not_made_twice(tmp_path: Path, database_url: str) -> None:
    factory = make_sessionmaker(make_engine(database_url))
    now = datetime.now(UTC)
    with transaction(factory) as session:
        session.add(
            RotaDuty(
                start=now - timedelta(hours=1),
                end=now + timedelta(hours=1),
                user_id=ADA,
                published_at=now,
                published_by=MAY,
                handed_off_at=now,
                reminded_at=now,
            )
        )
        session.add(Phone(user_id=ADA, number=ADA_PHONE, confirmed_at=now, code_attempts=0, codes_sent=0))
    with (
        SlackStandIn(channels=(CHANNEL,)) as slack,
        PymapServer(tmp_path / "imap") as imap,
        TwilioStandIn() as twilio,
    ):
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=database_url,
            MANAGERS=MAY,
            PAGE_POLICY=POLICY,
            **twilio.env(),
        )
        settings = make_settings(database_url, MANAGERS=MAY, PAGE_POLICY=POLICY, **twilio.env())
        ticket_id = urgent_ticket(factory, at=now)
        with transaction(factory) as session:
            step = start_page(session, ticket_id=ticket_id, now=now, settings=settings)
            assert step is not None and step.channels == ("call",)
            step_effects(session, settings, step, now)

        twilio.stall_creates.set()
        first = BotProcess(env, tmp_path / "first")
        with first:
            wait_until(lambda: twilio.calls(ADA_PHONE), timeout=30, what="Twilio to accept the call")
            first.kill()
        with factory() as session:
            row = session.scalar(select(OutboxItem).where(OutboxItem.kind == PHONE_CALL))
            assert row is not None and row.status == "pending" and row.attempts == 1
            assert session.scalar(select(PhoneDelivery)) is None
        twilio.stall_creates.clear()
        twilio.release.set()

        with BotProcess(env, tmp_path / "second"):

            def delivered() -> OutboxItem | None:
                with factory() as session:
                    row = session.scalar(select(OutboxItem).where(OutboxItem.kind == PHONE_CALL))
                    return row if row is not None and row.status == "done" else None

            done = wait_until(delivered, timeout=60, what="the call's row delivered after the restart")
        calls = twilio.calls(ADA_PHONE)
        assert len(calls) == 1, "a second call was made"
        assert done.result.get("adopted") is True and done.result["sid"] == calls[0].sid
        with factory() as session:
            recorded = session.scalar(select(PhoneDelivery))
            assert recorded is not None and recorded.sid == calls[0].sid and recorded.outbox_id == done.id

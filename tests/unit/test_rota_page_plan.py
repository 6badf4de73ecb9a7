"""The paging chain under PAGE_POLICY: each level's channels at their offsets, the level's
wait after its last step, keypress 2 passing on, and Do Not Disturb when a call is to come."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.phone.numbers import confirm, start_registration
from bot.storage.db import transaction
from rota import paging
from rota.handoff_jobs import NoPhoneWarning, tick_rota
from rota.page_policy import parse_policy
from tests.support.night_rota import ADA, BOB, MAY, NIGHT, POLICY, night, settings_for, urgent_ticket
from tests.support.twilio_stand_in import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER

__all__ = ["night"]  # the fixture, from tests/support/night_rota.py

PHONE_POLICY = replace(
    POLICY, plan=parse_policy("oncall: slack, call+2m, call+5m; backup: slack, call+2m; managers: slack, sms")
)


def run_night(factory: sessionmaker[Session], minutes: int) -> list[tuple[int, str, tuple[str, ...]]]:
    """Every step taken minute by minute: (minute, who, channels)."""
    ticket_id = urgent_ticket(factory)
    taken = []
    with transaction(factory) as session:
        first = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=PHONE_POLICY)
        assert first is not None
        taken.append((0, first.users[0], first.channels))
    for minute in range(1, minutes):
        with transaction(factory) as session:
            for step in paging.due_steps(session, NIGHT + timedelta(minutes=minute), PHONE_POLICY):
                if step.users:
                    taken.append((minute, step.users[0], step.channels))
    return taken


def test_each_level_fires_its_channels_at_their_offsets(night: sessionmaker[Session]) -> None:
    # The level's wait (PAGE_REPEAT_MINUTES, 5) follows its last step.
    assert run_night(night, 30) == [
        (0, ADA, ("slack",)),
        (2, ADA, ("call",)),
        (5, ADA, ("call",)),
        (10, BOB, ("slack",)),
        (12, BOB, ("call",)),
        (17, MAY, ("slack", "sms")),
    ]


def test_keypress_2_passes_to_the_next_level_now(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        first = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=PHONE_POLICY)
        assert first is not None
        paging.due_steps(session, NIGHT + timedelta(minutes=2), PHONE_POLICY)  # Ada's call
    with transaction(night) as session:
        # Someone not at this level cannot pass it on.
        assert paging.pass_on(session, first.page_id, user=MAY, now=NIGHT, policy=PHONE_POLICY) is None
        step = paging.pass_on(
            session, first.page_id, user=ADA, now=NIGHT + timedelta(minutes=3), policy=PHONE_POLICY
        )
    assert step is not None and (step.level, step.users, step.channels) == ("backup", (BOB,), ("slack",))
    with transaction(night) as session:
        later = paging.due_steps(session, NIGHT + timedelta(minutes=5), PHONE_POLICY)
    assert [(s.level, s.channels) for s in later] == [("backup", ("call",))]


def test_do_not_disturb_does_not_skip_a_call_still_to_come(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        step = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=PHONE_POLICY)
        assert step is not None
        assert not paging.record_dnd(session, step.page_id, step.step, ADA, dnd=True, policy=PHONE_POLICY)


def test_at_duty_start_a_holder_without_a_phone_and_the_managers_are_told(
    night: sessionmaker[Session], database_url: str
) -> None:

    settings = settings_for(
        database_url,
        PAGE_POLICY="oncall: slack, call+2m; managers: slack",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM=FROM_NUMBER,
        ROTA_PLAN_WEEKS="1",
    )
    with transaction(night) as session:
        report = tick_rota(session, settings, settings.calendar(), NIGHT)
    warned = {(n.to, n.as_manager) for n in report.notices if isinstance(n, NoPhoneWarning)}
    assert warned == {(ADA, False), (MAY, True)}
    # With a confirmed number, the next duty's hand-over warns nobody.
    with transaction(night) as session:
        sent = start_registration(session, BOB, "+393332222222", NIGHT)
        confirm(session, BOB, sent.code, NIGHT)
    with transaction(night) as session:
        later = tick_rota(session, settings, settings.calendar(), NIGHT + timedelta(days=6))
    assert [n for n in later.notices if isinstance(n, NoPhoneWarning)] == []
    assert any(getattr(n, "holder", None) == BOB for n in later.notices)

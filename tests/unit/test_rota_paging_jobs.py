"""The rota's on-call decisions as plain notices, without Slack: who is paged next, what a
paused phone changes, who stands down, and who hears of a holder's paused notifications."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.storage.db import transaction
from bot.storage.models import OutboxItem
from rota import paging
from rota.handoff_jobs import DutyDndWarning, duty_dnd_observed
from rota.paging_jobs import (
    DndNoticed,
    PageAcknowledged,
    Paged,
    PagingEnded,
    acknowledged,
    dnd_observed,
    paging_tick,
    stop_paging,
)
from tests.support.night_rota import ADA, BOB, MAY, NIGHT, POLICY, night, urgent_ticket

__all__ = ["night"]  # the fixture, from tests/support/night_rota.py


def test_the_next_person_paged_is_the_backup_once_the_repeats_are_done(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
    seen: list[tuple[str, tuple[str, ...], int, str]] = []
    for minutes in (5, 10, 15, 20):
        with transaction(night) as session:
            for notice in paging_tick(session, POLICY, NIGHT + timedelta(minutes=minutes)):
                assert isinstance(notice, Paged)
                seen.append((notice.step.level, notice.step.users, notice.step.repeat, notice.key))
    assert seen == [
        ("oncall", (ADA,), 1, "page:1:1"),
        ("oncall", (ADA,), 2, "page:1:2"),
        ("oncall", (ADA,), 3, "page:1:3"),
        ("backup", (BOB,), 0, "page:1:4"),
    ]
    with night() as session:
        # Deciding queues nothing: the words and the outbox rows are bot/slack/paging.py's.
        assert session.query(OutboxItem).filter(OutboxItem.kind == "slack.page").count() == 0


def test_a_paused_phone_escalates_sooner_and_is_noticed(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        step = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
        assert step is not None
        notices = dnd_observed(session, step.page_id, step.step, ADA, paused=True, policy=POLICY)
    assert notices == [DndNoticed(step.page_id, ticket_id, ADA, escalated=True)]
    assert notices[0].key == f"dnd:{step.page_id}:{ADA}"
    with transaction(night) as session:
        moved = paging_tick(session, POLICY, NIGHT + POLICY.dnd_escalate_after)
    assert [(n.step.level, n.step.users) for n in moved] == [("backup", (BOB,))]
    with transaction(night) as session:
        # Bob's phone rings: nothing to say, and nothing skips ahead.
        assert dnd_observed(session, step.page_id, moved[0].step.step, BOB, paused=False, policy=POLICY) == []


def test_the_managers_paused_phones_are_noticed_without_escalating(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
    managers_step = None
    for minutes in range(5, 45, 5):
        with transaction(night) as session:
            for notice in paging_tick(session, POLICY, NIGHT + timedelta(minutes=minutes)):
                if isinstance(notice, Paged) and notice.step.level == "managers" and managers_step is None:
                    managers_step = notice.step
    assert managers_step is not None and managers_step.users == (MAY,)
    with transaction(night) as session:
        notices = dnd_observed(
            session, managers_step.page_id, managers_step.step, MAY, paused=True, policy=POLICY
        )
    assert [n.escalated for n in notices] == [False]


def page_everyone_in_turn(session: Session, ticket_id: int) -> None:
    """A page started at NIGHT, stepped on every five minutes until all on the chain were woken."""
    paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
    for minutes in (5, 10, 15, 20):
        paging.due_steps(session, NIGHT + timedelta(minutes=minutes), POLICY)


def test_stopping_a_page_stands_down_everyone_it_woke(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        page_everyone_in_turn(session, ticket_id)
        [ended] = stop_paging(
            session, ticket_id, NIGHT + timedelta(minutes=21), "the ticket was marked as spam"
        )
        assert stop_paging(session, ticket_id, NIGHT + timedelta(minutes=22), "again") == []
    assert isinstance(ended, PagingEnded)
    assert ended.stand_down == (ADA, BOB) and not ended.ask_the_channel
    assert (ended.step.level, ended.step.reason) == ("cancelled", "the ticket was marked as spam")
    assert ended.key == f"page:{ended.step.page_id}:{ended.step.step}:cancelled"


def test_a_chain_that_runs_out_asks_the_channel(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
    last: list[Paged | PagingEnded] = []
    for minutes in range(5, 70, 5):
        with transaction(night) as session:
            last = paging_tick(session, POLICY, NIGHT + timedelta(minutes=minutes)) or last
    [ended] = last
    assert isinstance(ended, PagingEnded) and ended.ask_the_channel and ended.stand_down == ()


def test_only_the_first_acknowledgement_stands_the_others_down(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        page_everyone_in_turn(session, ticket_id)
        first = paging.acknowledge(session, 1, user=BOB, now=NIGHT + timedelta(minutes=21))
        later = paging.acknowledge(session, 1, user=ADA, now=NIGHT + timedelta(minutes=22))
    [notice] = acknowledged(first)
    assert isinstance(notice, PageAcknowledged)
    assert notice.stand_down == (ADA,) and notice.key == "ack:1"
    assert acknowledged(later) == []


def test_a_paused_holder_at_duty_start_is_warned_and_so_are_the_managers() -> None:
    assert duty_dnd_observed(7, ADA, [MAY], paused=False) == []
    warnings = duty_dnd_observed(7, ADA, [MAY], paused=True)
    assert warnings == [DutyDndWarning(7, ADA, ADA, False), DutyDndWarning(7, MAY, ADA, True)]
    assert [w.key for w in warnings] == [f"dnd-duty:7:{ADA}", f"dnd-duty:7:{MAY}"]
    # A holder who is also a manager hears it once, as a manager.
    assert duty_dnd_observed(8, MAY, [MAY, BOB], paused=True) == [
        DutyDndWarning(8, MAY, MAY, True),
        DutyDndWarning(8, BOB, MAY, True),
    ]

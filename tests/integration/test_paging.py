"""Paging after hours: page → no acknowledgement → repeat → escalate to the backup → managers;
an acknowledgement stops it; Do Not Disturb moves it on sooner; each step once, across
restarts and competing replicas; the morning hand-over tells the day team."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack.paging import (
    ACTION_ACK,
    ACTION_CLAIM,
    morning_handover,
    paging_tick,
    step_effects,
    stop_reason,
)
from bot.storage.db import make_engine, make_sessionmaker, transaction
from bot.storage.models import OutboxItem, Page, PageAttempt, Ticket
from bot.tickets.workflow import claim_ticket
from rota import paging
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.night_rota import (
    ADA,
    BOB,
    MAY,
    NIGHT,
    POLICY,
    ROME,
    attempts,
    night,
    rota_with_ada_on_call,
    settings_for,
    urgent_ticket,
)
from tests.support.slack_requests import SlackUser

__all__ = ["night"]  # the fixture, from tests/support/night_rota.py


def test_no_answer_repeats_then_escalates_to_the_backup_then_managers(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        first = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY, reason="keyword")
        assert first is not None and (first.level, first.users) == ("oncall", (ADA,))
        assert paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY) is None
    for minute in range(1, 70):
        with transaction(night) as session:
            paging.due_steps(session, NIGHT + timedelta(minutes=minute), POLICY)
    levels = [(level, user) for _, level, user in attempts(night)]
    assert levels == [("oncall", ADA)] * 4 + [("backup", BOB)] * 4 + [("managers", MAY)] * 4
    with night() as session:
        page = session.scalar(select(Page))
        assert page is not None and page.status == "exhausted"
        times = [a.at for a in session.scalars(select(PageAttempt).order_by(PageAttempt.id))]
    assert [int((t - NIGHT).total_seconds() // 60) for t in times] == list(range(0, 60, 5))


def test_an_acknowledgement_stops_the_chain_and_a_second_one_says_who(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
        paging.due_steps(session, NIGHT + timedelta(minutes=5), POLICY)
        ack = paging.acknowledge(session, 1, user=ADA, now=NIGHT + timedelta(minutes=7))
        assert ack.first and ack.after == timedelta(minutes=7) and ack.paged == (ADA,)
        again = paging.acknowledge(session, 1, user=BOB, now=NIGHT + timedelta(minutes=8))
        assert not again.first and again.by == ADA
    with transaction(night) as session:
        assert paging.due_steps(session, NIGHT + timedelta(hours=2), POLICY) == []
    assert len(attempts(night)) == 2


def test_claiming_the_ticket_elsewhere_cancels_the_chain(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
        claim_ticket(session, ticket_id, BOB, NIGHT + timedelta(minutes=2))
    with transaction(night) as session:
        steps = paging.due_steps(session, NIGHT + timedelta(minutes=5), POLICY)
    assert [(s.level, stop_reason(s)) for s in steps] == [("cancelled", "<@UBOB> claimed the ticket")]


def test_do_not_disturb_moves_on_to_the_backup_sooner(night: sessionmaker[Session]) -> None:
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        step = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, policy=POLICY)
        assert step is not None
        assert paging.record_dnd(session, step.page_id, step.step, ADA, dnd=True, policy=POLICY)
    with transaction(night) as session:
        assert paging.due_steps(session, NIGHT + timedelta(seconds=30), POLICY) == []
        moved = paging.due_steps(session, NIGHT + timedelta(minutes=1), POLICY)
    assert [(s.level, s.users) for s in moved] == [("backup", (BOB,))]
    with transaction(night) as session:
        # Bob answers his phone: nothing skips ahead.
        assert not paging.record_dnd(session, moved[0].page_id, moved[0].step, BOB, dnd=False, policy=POLICY)


def test_a_rerun_after_a_restart_takes_each_step_once(
    night: sessionmaker[Session], database_url: str
) -> None:
    settings = settings_for(database_url)
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        step = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, settings=settings)
        assert step is not None
        step_effects(session, settings, step, NIGHT)
    later = NIGHT + timedelta(minutes=6)
    for _ in range(3):  # the job ran, the bot restarted, the job ran again at the same moment
        with transaction(night) as session:
            paging_tick(session, settings, later)
    assert [a[0] for a in attempts(night)] == [0, 1]
    with night() as session:
        pages = session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.page")).all()
    assert [p.dedupe_key for p in pages] == [f"page:1:0:{ADA}", f"page:1:1:{ADA}"]


def test_two_replicas_stepping_at_once_page_once_per_step(
    night: sessionmaker[Session], database_url: str
) -> None:
    settings = settings_for(database_url)
    for n in range(1, 6):
        ticket_id = urgent_ticket(night, n)
        with transaction(night) as session:
            paging.start_page(session, ticket_id=ticket_id, now=NIGHT, settings=settings)
    engines = [make_engine(database_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def replica(engine: object) -> None:
        factory = make_sessionmaker(engine)  # type: ignore[arg-type]
        barrier.wait()
        try:
            with transaction(factory) as session:
                paging_tick(session, settings, NIGHT + timedelta(minutes=5))
        except OperationalError as exc:  # SQLite: the loser of the write lock gives up, changing nothing
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    steps = attempts(night)
    assert sorted(s for s, _, _ in steps) == [0] * 5 + [1] * 5
    with night() as session:
        keys = [
            p.dedupe_key for p in session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.page"))
        ]
    assert len(keys) == 5 and len(set(keys)) == 5


def test_morning_hand_over_sums_up_the_night(night: sessionmaker[Session], database_url: str) -> None:
    settings = settings_for(database_url)
    calendar = settings.calendar()
    urgent = urgent_ticket(night, 1)
    quiet = urgent_ticket(night, 2, at=NIGHT + timedelta(hours=1))
    with transaction(night) as session:
        paging.start_page(session, ticket_id=urgent, now=NIGHT, settings=settings)
        paging.acknowledge(session, 1, user=ADA, now=NIGHT + timedelta(minutes=4))
        claim_ticket(session, urgent, ADA, NIGHT + timedelta(minutes=5))
    opening = datetime(2026, 12, 2, 9, 0, tzinfo=ROME).astimezone(UTC)
    with transaction(night) as session:
        assert not morning_handover(session, settings, calendar, opening - timedelta(minutes=1))
        assert morning_handover(session, settings, calendar, opening + timedelta(minutes=1))
        assert not morning_handover(session, settings, calendar, opening + timedelta(minutes=2))
        # A bot that comes up in the afternoon says nothing: the team has seen the night by then.
        next_opening = opening + timedelta(days=1)
        assert not morning_handover(session, settings, calendar, next_opening + timedelta(hours=2))
        assert morning_handover(session, settings, calendar, next_opening + timedelta(hours=1, minutes=59))
        post = session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == "morning:2026-12-02"))
        numbers = {t.id: t.number for t in session.scalars(select(Ticket))}
    assert post is not None
    text = post.payload["text"]
    assert "2 tickets came in overnight" in text and "1 still unclaimed" in text
    assert (
        f"#{numbers[urgent]} Server down 1: paged <@{ADA}>; "
        f"<@{ADA}> acknowledged in 4 min; claimed by <@{ADA}>" in text
    )
    assert f"#{numbers[quiet]} Server down 2: *unclaimed*" in text


# -- through Slack ------------------------------------------------------------------------------


@dataclass
class Night:
    bot: SupportBot
    slack: SlackStandIn
    clock: FrozenClock


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[Night]:
    with SlackStandIn(channels=(CHANNEL,)) as slack, PymapServer(tmp_path / "imap") as imap:
        for user, name in ((ADA, "ada"), (BOB, "bob")):
            slack.add_user(user, name, name.title(), channels=(CHANNEL,))
        # The manager is not in the support channel, so not on the rota: the bot's own roster
        # sync (at start, and its re-planning a minute on) must find the team the rota was
        # planned for, or May could become Bob's week's holder and the backup paged.
        slack.add_user(MAY, "may", "May")
        clock = FrozenClock(NIGHT)
        env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, MANAGERS=MAY)
        with running_bot(env, clock=clock) as bot:
            rota_with_ada_on_call(bot.factory, bot.settings)
            yield Night(bot, slack, clock)


def start(live: Night) -> int:
    ticket_id = urgent_ticket(live.bot.factory)
    with transaction(live.bot.factory) as session:
        step = paging.start_page(
            session, ticket_id=ticket_id, now=live.clock.now(), settings=live.bot.settings
        )
        assert step is not None
        step_effects(session, live.bot.settings, step, live.clock.now())
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.slack_ts = None  # posted by the worker shortly; the thread notices wait for it
    live.bot.jobs.paging_tick()
    return ticket_id


def page_dm(live: Night, user: str, count: int = 1) -> dict:
    return wait_until(
        lambda: (
            (dms := [m for m in live.slack.dms(user) if "Urgent ticket" in m.get("text", "")])
            and len(dms) >= count
            and {**dms[-1], "channel": live.slack.dm_channels[user]}
        ),
        what=f"page DM {count} to {user}",
    )


def test_a_page_reaches_the_on_call_dm_and_acknowledge_stops_it(live: Night) -> None:
    ticket_id = start(live)
    message = page_dm(live, ADA)
    assert "Server down 1" in message["text"]
    answer = SlackUser(live.bot.url, live.slack, ADA).click(message, ACTION_ACK)
    assert answer.status == 200
    wait_until(
        lambda: any("You acknowledged this page" in str(m.get("blocks")) for m in live.slack.dms(ADA)),
        what="the page DM shows the acknowledgement",
    )

    # The page DM goes before anything in the outbox, so the acknowledgement may come before
    # the ticket's own post is recorded (triage may hold the ticket's row meanwhile): wait for it.
    def posted_ts() -> str | None:
        with live.bot.factory() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            return ticket.slack_ts

    thread = live.slack.thread(CHANNEL, wait_until(posted_ts, what="the ticket's post"))
    wait_until(
        lambda: any(
            "acknowledged the page after" in m["text"] for m in live.slack.thread(CHANNEL, thread[0]["ts"])
        ),
        what="the thread notice",
    )
    live.clock.advance(timedelta(minutes=30))
    live.bot.jobs.paging_tick()
    assert not [m for m in live.slack.dms(BOB) if "Urgent ticket" in m.get("text", "")]


def test_an_acknowledgement_ends_every_page_dm_and_says_how_fast(live: Night) -> None:
    start(live)
    page_dm(live, ADA)
    for _ in range(4):  # Ada never answers: three repeats, then her backup
        live.clock.advance(timedelta(minutes=5))
        live.bot.jobs.paging_tick()
    page_dm(live, ADA, count=4)
    # The backup (or, when the rota names none, a manager) answers.
    _, _, backup = wait_until(lambda: attempts(live.bot.factory)[4:], what="the next level paged")[0]
    answered = page_dm(live, backup)
    live.clock.advance(timedelta(minutes=2))
    assert SlackUser(live.bot.url, live.slack, backup).click(answered, ACTION_ACK).status == 200

    def pages(user: str) -> list[dict]:
        return [m for m in live.slack.dms(user) if "Urgent ticket" in m.get("text", "")]

    def all_over(user: str) -> list[dict] | None:
        shown = pages(user)
        if any(b["type"] == "actions" for m in shown for b in m.get("blocks") or []):
            return None
        return shown

    adas = wait_until(lambda: all_over(ADA), what="every page DM to Ada rewritten")
    assert len(adas) == 4
    assert all(f"Over: <@{backup}> acknowledged this page after 22 min" in str(m["blocks"]) for m in adas)
    theirs = wait_until(lambda: all_over(backup), what="the answered page DM rewritten")
    assert "You acknowledged this page" in str(theirs[0]["blocks"])
    wait_until(
        lambda: [m for m in live.slack.dms(ADA) if "acknowledged urgent ticket" in m.get("text", "")],
        what="Ada's stand-down DM",
    )
    stand_down = next(m for m in live.slack.dms(ADA) if "acknowledged urgent ticket" in m.get("text", ""))
    assert f"<@{backup}> acknowledged urgent ticket #1 after 22 min" in stand_down["text"]


def test_claim_from_the_page_and_a_late_click_by_someone_else(live: Night) -> None:
    ticket_id = start(live)
    live.clock.advance(timedelta(minutes=20))
    live.bot.jobs.paging_tick()  # repeats for Ada
    for _ in range(3):
        live.bot.jobs.paging_tick()
        live.clock.advance(timedelta(minutes=5))
    live.bot.jobs.paging_tick()  # Ada's three repeats are done: the backup's turn
    bob_page = page_dm(live, BOB)
    ada_page = page_dm(live, ADA)  # as her phone shows it, buttons still there
    SlackUser(live.bot.url, live.slack, BOB).click(bob_page, ACTION_CLAIM)
    wait_until(
        lambda: any("claimed the ticket" in str(m.get("blocks")) for m in live.slack.dms(BOB)),
        what="Bob's DM",
    )
    with live.bot.factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.owner == BOB
    wait_until(
        lambda: any("acknowledged urgent ticket" in m.get("text", "") for m in live.slack.dms(ADA)),
        what="Ada told",
    )
    # A click on the stale DM (sent before its rewrite reached her) is answered in place:
    # "Bob had already acknowledged", or the page's own rewrite if that lands after it.
    assert SlackUser(live.bot.url, live.slack, ADA).click(ada_page, ACTION_ACK).status == 200

    def clicked_dm_says_bob() -> bool:
        shown = next((m for m in live.slack.dms(ADA) if m["ts"] == ada_page["ts"]), {})
        blocks = str(shown.get("blocks"))
        return "page_ack" not in blocks and (
            f"<@{BOB}> had already acknowledged" in blocks or f"Over: <@{BOB}> acknowledged" in blocks
        )

    wait_until(clicked_dm_says_bob, what="Ada sees Bob got there first")
    with live.bot.factory() as session:
        page = session.scalar(select(Page))
        assert page is not None and page.acknowledged_by == BOB


def test_a_tick_run_by_hand_waits_for_one_under_way_and_takes_what_fell_due_since(live: Night) -> None:
    """The scheduler's own tick may hold the page, at the time it read, when a tick is run by
    hand after the clock moved (the sandbox's clock, an operator): the second must not skip
    the page the first holds, or the step due by its later time waits a whole interval."""
    start(live)  # Ada paged: step 0
    live.clock.advance(timedelta(minutes=5))  # her first repeat falls due
    holding, release = threading.Event(), threading.Event()
    first = threading.Thread(target=live.bot.jobs.paging_tick)

    def hold_after_reading_pages(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if threading.current_thread() is first and "FROM pages" in statement and not holding.is_set():
            holding.set()
            release.wait(15)

    event.listen(live.bot.engine, "after_cursor_execute", hold_after_reading_pages)
    try:
        first.start()
        assert holding.wait(15), "the first tick never read the pages"
        live.clock.advance(timedelta(minutes=5))  # her second repeat falls due too
        second = threading.Thread(target=live.bot.jobs.paging_tick)
        second.start()
        # Waiting its turn, it cannot finish while the first is held; a tick that skipped the
        # held page would have finished by now, having taken nothing.
        second.join(1.0)
        assert second.is_alive()
        release.set()
        first.join(15)
        second.join(15)
    finally:
        release.set()
        event.remove(live.bot.engine, "after_cursor_execute", hold_after_reading_pages)
    assert [(step, user) for step, _, user in attempts(live.bot.factory)] == [(0, ADA), (1, ADA), (2, ADA)]


def test_do_not_disturb_is_noticed_and_the_backup_paged_sooner(live: Night) -> None:
    # Her quiet hours, which any app can read (a manual pause it cannot: see below).
    live.slack.schedule_dnd(ADA, time.time() - 3600, time.time() + 8 * 3600)
    start(live)
    page_dm(live, ADA)

    def dnd_recorded() -> bool:
        with live.bot.factory() as session:
            attempt = session.scalar(select(PageAttempt).where(PageAttempt.user_id == ADA))
            return attempt is not None and attempt.dnd is True

    wait_until(dnd_recorded, what="Do Not Disturb read")
    live.clock.advance(timedelta(minutes=1))
    live.bot.jobs.paging_tick()
    page_dm(live, BOB)

    def notices() -> list[str]:
        with live.bot.factory() as session:
            ticket = session.scalar(select(Ticket))
            ts = ticket.slack_ts if ticket else None
        return [m["text"] for m in live.slack.thread(CHANNEL, ts)] if ts else []

    wait_until(
        lambda: any("has notifications paused" in text and "sooner" in text for text in notices()),
        what="the DND notice in the ticket's thread",
    )


def test_a_paused_phone_the_bot_cannot_see_still_ends_with_the_backup(live: Night) -> None:
    # "Pause notifications" shows in dnd.info to the person only; the bot reads nothing.
    live.slack.snooze(ADA, minutes=120)
    start(live)
    page_dm(live, ADA)

    def dnd_read() -> bool | None:
        with live.bot.factory() as session:
            attempt = session.scalar(select(PageAttempt).where(PageAttempt.user_id == ADA))
            return attempt.dnd if attempt is not None and attempt.dnd is not None else None

    assert wait_until(lambda: dnd_read() is not None, what="Do Not Disturb read") and dnd_read() is False
    # No answer: the page repeats, then goes to the backup, as for anyone not answering.
    for _ in range(4):
        live.clock.advance(timedelta(minutes=5))
        live.bot.jobs.paging_tick()
    page_dm(live, ADA, count=4)
    # The next level (the backup; the managers when the rota names none) is paged.
    step, _, backup = wait_until(lambda: attempts(live.bot.factory)[4:], what="the next level paged")[0]
    assert step == 4 and backup != ADA
    page_dm(live, backup)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"COMP_PAGE_WORK": "true"}, ("1.5 h / 8 h", "0.1900", "days")),
        (
            {
                "COMP_PAGE_WORK": "true",
                "COMP_POLICY": "pay",
                "COMP_PAY_RATES": "weeknight=10, weekend=15, holiday=20",
            },
            ("1.5 h × 10", "15.0000", "money"),
        ),
    ],
)
def test_night_work_on_a_page_earns_compensation_once(
    night: sessionmaker[Session], database_url: str, overrides: dict[str, str], expected: tuple[str, str, str]
) -> None:
    from bot.slack.handoffs import rota_tick
    from bot.storage.models import LedgerLine
    from bot.tickets.workflow import resolve_ticket

    settings = settings_for(database_url, **overrides)
    ticket_id = urgent_ticket(night)
    with transaction(night) as session:
        paging.start_page(session, ticket_id=ticket_id, now=NIGHT, settings=settings)
        paging.acknowledge(session, 1, user=BOB, now=NIGHT + timedelta(minutes=3))
    with transaction(night) as session:
        resolve_ticket(session, ticket_id, BOB, NIGHT + timedelta(minutes=90))
    for minutes in (91, 92):
        with transaction(night) as session:
            rota_tick(session, settings, settings.calendar(), NIGHT + timedelta(minutes=minutes))
    with night() as session:
        lines = session.scalars(select(LedgerLine).where(LedgerLine.page_id.is_not(None))).all()
    _, amount, unit = expected
    assert [(line.user_id, f"{line.amount:.4f}", line.unit) for line in lines] == [(BOB, amount, unit)]
    assert "night work on ticket #1" in lines[0].note


def test_only_after_hours_time_on_a_page_counts() -> None:
    from decimal import Decimal

    from rota.compensation import PayPerWeightedHour, page_work_earning
    from rota.load import LoadWeights

    calendar = settings_for("sqlite://").calendar()
    policy = PayPerWeightedHour(rate=Decimal(1), weights=LoadWeights(weeknight=10, weekend=15, holiday=20))
    # Wednesday 08:30 → 09:30: half an hour before opening counts, the half hour after does not.
    start = datetime(2026, 12, 2, 8, 30, tzinfo=ROME)
    assert page_work_earning(start, start + timedelta(hours=1), policy, calendar) == Decimal("5.00")
    # Christmas Day (a holiday in Italy): the whole hour, at the holiday rate.
    christmas = datetime(2026, 12, 25, 14, 0, tzinfo=ROME)
    assert page_work_earning(christmas, christmas + timedelta(hours=1), policy, calendar) == Decimal("20.00")

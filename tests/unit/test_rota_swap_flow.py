"""The on-call use cases without Slack: after each step of a swap or cover, a publish, time
off or a compensation adjustment, who is told what; and the refusals' data. Real database
session, no HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.business_hours import BusinessCalendar
from bot.storage.db import transaction
from rota import comp_adjustments, errors, publishing, store, swap_flow, time_off
from rota.notices import SwapNews
from rota.planner import PlanConfig
from rota.store import DutyView, StaffMember
from rota.swap_flow import SwapPolicy

ROME = ZoneInfo("Europe/Rome")
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
WEEK = PlanConfig(unit="week")
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=ROME).astimezone(UTC)
TEAM = [StaffMember("UADA", "Ada", "Europe/Rome"), StaffMember("UBOB", "Bob", "Europe/Rome")]
TEAM += [StaffMember("UCY", "Cy", "Europe/Rome")]
MANAGERS = frozenset({"UMAY", "UMAX"})
FREE = SwapPolicy(approval=False, managers=MANAGERS, expires_in=timedelta(hours=48))
APPROVED = SwapPolicy(approval=True, managers=MANAGERS, expires_in=timedelta(hours=48))


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    with transaction(session_factory) as session:
        store.sync_roster(session, TEAM, MONDAY - timedelta(days=30))
        published = publishing.publish(
            session, CALENDAR, WEEK, by="UMAY", now=MONDAY, until=MONDAY + timedelta(weeks=6)
        )
        assert published is not None
    yield session_factory


def told(result: swap_flow.SwapResult) -> list[tuple[str, SwapNews]]:
    return [(n.to, n.news) for n in result.notices]


def future_duty_of(session: Session, user: str) -> DutyView:
    return next(d for d in store.duties_of(session, user, since=MONDAY) if d.start > MONDAY)


def offer_ada_to_bob(session: Session, policy: SwapPolicy = FREE) -> swap_flow.SwapResult:
    duty = future_duty_of(session, "UADA")
    return swap_flow.offer(session, duty.id, user="UADA", to_user="UBOB", note="", now=MONDAY, policy=policy)


def bob_answers(
    session: Session, offered: swap_flow.SwapResult, *, accept: bool, policy: SwapPolicy = FREE
) -> swap_flow.SwapResult:
    return swap_flow.answer(session, offered.swap.id, user="UBOB", accept=accept, now=MONDAY, policy=policy)


def manager_decides(
    session: Session, offered: swap_flow.SwapResult, manager: str, *, approve: bool
) -> swap_flow.SwapResult:
    return swap_flow.decide(
        session, offered.swap.id, manager=manager, approve=approve, now=MONDAY, policy=APPROVED
    )


def test_an_offer_tells_the_colleague_and_an_accept_tells_the_offerer(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        offered = offer_ada_to_bob(session)
        assert told(offered) == [("UBOB", SwapNews.OFFERED)]
        assert offered.notices[0].swap.id == offered.swap.id
        accepted = bob_answers(session, offered, accept=True)
    assert told(accepted) == [("UADA", SwapNews.HANDED_OVER)]
    assert accepted.duty.user_id == "UBOB" and not accepted.by_manager
    assert not accepted.notices[0].approved and not accepted.notices[0].under_way


def test_a_decline_tells_only_the_offerer(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        offered = offer_ada_to_bob(session)
        declined = bob_answers(session, offered, accept=False)
    assert told(declined) == [("UADA", SwapNews.DECLINED)]
    assert declined.swap.status == "declined" and declined.duty.user_id == "UADA"


def test_with_approval_managers_are_asked_then_the_others_stand_down(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        offered = offer_ada_to_bob(session, APPROVED)
        accepted = bob_answers(session, offered, accept=True, policy=APPROVED)
        assert told(accepted) == [
            ("UMAX", SwapNews.NEEDS_APPROVAL),
            ("UMAY", SwapNews.NEEDS_APPROVAL),
            ("UADA", SwapNews.ACCEPTED_AWAITS_MANAGER),
        ]
        approved = manager_decides(session, offered, "UMAY", approve=True)
    assert told(approved) == [
        ("UMAX", SwapNews.DECIDED_ELSEWHERE),
        ("UADA", SwapNews.HANDED_OVER),
        ("UBOB", SwapNews.NOW_YOURS),
    ]
    assert approved.by_manager and all(n.actor == "UMAY" for n in approved.notices)
    assert approved.notices[1].approved and approved.notices[1].duty.user_id == "UBOB"


def test_a_rejection_tells_both_people_in_the_request(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        offered = offer_ada_to_bob(session, APPROVED)
        bob_answers(session, offered, accept=True, policy=APPROVED)
        rejected = manager_decides(session, offered, "UMAX", approve=False)
    assert told(rejected) == [
        ("UMAY", SwapNews.DECIDED_ELSEWHERE),
        ("UADA", SwapNews.REJECTED),
        ("UBOB", SwapNews.REJECTED),
    ]
    assert rejected.duty.user_id == "UADA"


def test_withdrawing_a_swap_tells_the_other_person_but_a_cover_tells_nobody(
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as session:
        offered = offer_ada_to_bob(session)
        withdrawn = swap_flow.withdraw(session, offered.swap.id, user="UADA", now=MONDAY)
        assert told(withdrawn) == [("UBOB", SwapNews.WITHDRAWN)]
        duty = future_duty_of(session, "UADA")
        asked = swap_flow.cover(
            session, duty.start.astimezone(ROME).date() + timedelta(days=1), user="UCY", now=MONDAY,
            policy=APPROVED, team_tz=ROME,
        )  # fmt: skip
        assert told(asked) == [("UMAX", SwapNews.NEEDS_APPROVAL), ("UMAY", SwapNews.NEEDS_APPROVAL)]
        assert swap_flow.withdraw(session, asked.swap.id, user="UCY", now=MONDAY).notices == ()


def test_an_unanswered_offer_expires_and_its_offerer_is_told(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        offered = offer_ada_to_bob(session)
        assert swap_flow.expire(session, MONDAY + timedelta(hours=1)) == []
        expired = swap_flow.expire(session, MONDAY + timedelta(hours=49))
    assert [(n.to, n.news, n.swap.id) for n in expired] == [("UADA", SwapNews.EXPIRED, offered.swap.id)]
    assert expired[0].swap.status == "expired"


def test_covering_the_duty_under_way_tells_its_holder_from_now(db: sessionmaker[Session]) -> None:
    wednesday = MONDAY + timedelta(days=2)
    with transaction(db) as session:
        current = store.duty_at(session, wednesday)
        assert current is not None and current.user_id is not None
        coverer = next(m.user_id for m in TEAM if m.user_id != current.user_id)
        taken = swap_flow.cover(session, None, user=coverer, now=wednesday, policy=FREE, team_tz=ROME)
    assert told(taken) == [(current.user_id, SwapNews.HANDED_OVER)]
    notice = taken.notices[0]
    assert notice.under_way and (notice.duty.start, notice.duty.user_id) == (wednesday, coverer)


def test_publishing_tells_each_person_what_they_gained_and_lost(db: sessionmaker[Session]) -> None:
    until = MONDAY + timedelta(weeks=6)
    with transaction(db) as session:
        again = publishing.publish(session, CALENDAR, WEEK, by="UMAY", now=MONDAY, until=until)
        assert again is None  # the rota already is this plan
        cys = [d for d in store.duties_of(session, "UCY", since=MONDAY) if d.start > MONDAY]
        store.set_active(session, "UCY", False, by="UMAY", now=MONDAY)
        published = publishing.publish(session, CALENDAR, WEEK, by="UMAY", now=MONDAY, until=until)
    assert published is not None and published.by == "UMAY"
    by_person = {n.to: n for n in published.notices}
    assert sorted(by_person) == sorted({p for c in published.changes for p in (c.before, c.after) if p})
    assert by_person["UCY"].gained == () and {c.start for c in by_person["UCY"].lost} == {
        d.start for d in cys
    }
    gained = [c for n in published.notices for c in n.gained]
    assert sorted(c.start for c in gained) == sorted(c.start for c in published.changes)


def test_time_off_on_someones_behalf_tells_them_with_their_clashes(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        mine = future_duty_of(session, "UADA")
        day = mine.start.astimezone(ROME).date() + timedelta(days=1)
        own = time_off.record_time_off(session, "UADA", day, day, by="UADA", now=MONDAY)
        assert own.notices == ()
        theirs = time_off.record_time_off(session, "UBOB", day, day, by="UMAY", now=MONDAY)
        assert [(n.to, n.cancelled, n.actor) for n in theirs.notices] == [("UBOB", False, "UMAY")]
        assert theirs.notices[0].clashes == theirs.added.clashes
        cancelled = time_off.cancel_time_off(
            session, own.added.time_off.id, by="UMAY", manager=True, now=MONDAY
        )
    assert [(n.to, n.cancelled) for n in cancelled.notices] == [("UADA", True)]
    assert [d.id for d in own.added.clashes] == [mine.id]


def test_a_compensation_adjustment_tells_the_person(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        done = comp_adjustments.adjust_compensation(
            session, "UBOB", Decimal("-0.5"), "paid out", by="UMAY", now=MONDAY, unit="days"
        )
    assert [(n.to, n.actor, n.line.amount) for n in done.notices] == [("UBOB", "UMAY", Decimal("-0.5"))]


def test_refusals_carry_who_and_what_as_data(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        duty = future_duty_of(session, "UADA")
        with pytest.raises(errors.CannotSwapWithYourself) as yourself:
            swap_flow.offer(session, duty.id, user="UADA", to_user="UADA", note="", now=MONDAY, policy=FREE)
        assert yourself.value.field == errors.PERSON
        with pytest.raises(errors.NotYourDuty) as not_yours:
            swap_flow.offer(session, duty.id, user="UBOB", to_user="UCY", note="", now=MONDAY, policy=FREE)
        assert (not_yours.value.duty_id, not_yours.value.user, not_yours.value.field) == (
            duty.id,
            "UBOB",
            errors.DUTY,
        )
        with pytest.raises(errors.NotOnRota) as stranger:
            swap_flow.offer(session, duty.id, user="UADA", to_user="UEVE", note="", now=MONDAY, policy=FREE)
        assert stranger.value.user == "UEVE" and stranger.value.field == errors.PERSON
        day = duty.start.astimezone(ROME).date() + timedelta(days=1)
        store.add_time_off(session, "UCY", day, day, by="UCY", now=MONDAY)
        with pytest.raises(errors.AwayThen) as away:
            swap_flow.offer(session, duty.id, user="UADA", to_user="UCY", note="", now=MONDAY, policy=FREE)
        assert (away.value.user, away.value.first_day, away.value.last_day) == ("UCY", day, day)
        offered = offer_ada_to_bob(session)
        with pytest.raises(errors.AlreadyRequested) as pending:
            swap_flow.offer(session, duty.id, user="UADA", to_user="UBOB", note="", now=MONDAY, policy=FREE)
        assert (pending.value.swap_id, pending.value.to_user, pending.value.status) == (
            offered.swap.id,
            "UBOB",
            "offered",
        )
        with pytest.raises(errors.OfferNotForYou) as wrong:
            swap_flow.answer(session, offered.swap.id, user="UCY", accept=True, now=MONDAY, policy=FREE)
        assert (wrong.value.swap_id, wrong.value.to_user, wrong.value.user) == (
            offered.swap.id,
            "UBOB",
            "UCY",
        )
        swap_flow.withdraw(session, offered.swap.id, user="UADA", now=MONDAY)
        with pytest.raises(errors.AlreadyClosed) as closed:
            swap_flow.answer(session, offered.swap.id, user="UBOB", accept=True, now=MONDAY, policy=FREE)
        assert isinstance(closed.value, errors.RequestClosed) and closed.value.status == "cancelled"
        with pytest.raises(errors.NoDutyThatNight) as no_night:
            swap_flow.offer_night(
                session, MONDAY.date() + timedelta(weeks=20), user="UADA", to_user="UBOB", note="",
                now=MONDAY, policy=FREE, team_tz=ROME,
            )  # fmt: skip
        assert no_night.value.night == MONDAY.date() + timedelta(weeks=20)

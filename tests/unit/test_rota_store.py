"""The stored rota: roster sync, time off, publishing, swaps and covers, and the ledger,
on a real database (SQLite, and PostgreSQL in CI)."""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.business_hours import BusinessCalendar
from bot.slack.oncall_errors import rota_error_text
from bot.slack.oncall_plan import fairness_blocks
from bot.storage.db import transaction
from bot.storage.models import LedgerLine, RotaMember
from rota import ledger, store, swaps
from rota.compensation import DaysInLieu
from rota.planner import PlanConfig
from rota.standing import fairness_report
from rota.store import RotaError, StaffMember

ROME = ZoneInfo("Europe/Rome")
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
WEEK = PlanConfig(unit="week")
# Monday 2026-11-30, 08:00 in Rome: an hour before the week's hand-off.
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=ROME).astimezone(UTC)
TEAM = [
    StaffMember("UADA", "Ada", "Europe/Rome"),
    StaffMember("UBOB", "Bob", "Europe/London"),
    StaffMember("UCY", "Cy", "Europe/Rome"),
]


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    with transaction(session_factory) as session:
        store.sync_roster(session, TEAM, MONDAY - timedelta(days=30))
    yield session_factory


def publish(db: sessionmaker[Session], *, now: datetime = MONDAY, weeks: int = 6) -> store.Published:
    with transaction(db) as session:
        preview = store.preview_plan(session, CALENDAR, WEEK, now=now, until=now + timedelta(weeks=weeks))
        return store.publish_plan(session, preview, by="UMGR", now=now)


def test_roster_follows_the_staff_and_keeps_managers_choices(db: sessionmaker[Session]) -> None:
    later = MONDAY
    with transaction(db) as session:
        store.set_weight(session, "UBOB", 0.5, by="UMGR", now=later)
        store.set_active(session, "UCY", False, by="UMGR", now=later)
        changes = store.sync_roster(
            session, [*TEAM[:2], StaffMember("UDEE", "Dee", "America/New_York")], later
        )
        assert changes.added == ("UDEE",)
        assert changes.left == ()  # Cy was already off the rota (a manager's choice)
        assert [m.user_id for m in store.members(session)] == ["UADA", "UBOB", "UDEE"]
        assert store.member(session, "UBOB").weight == 0.5  # type: ignore[union-attr]
        # Dee leaves and comes back; Cy, taken off by a manager, is still off after a sync.
        store.sync_roster(session, TEAM, later)
        assert [m.user_id for m in store.members(session)] == ["UADA", "UBOB"]
        store.sync_roster(session, [*TEAM, StaffMember("UDEE", "Dee", "America/New_York")], later)
        assert [m.user_id for m in store.members(session)] == ["UADA", "UBOB", "UDEE"]
        assert store.member(session, "UDEE").tz == ZoneInfo("America/New_York")  # type: ignore[union-attr]
        with pytest.raises(RotaError):
            store.set_weight(session, "UADA", 1.5, by="UMGR", now=later)


def test_publishing_covers_the_range_in_weeks_and_is_fair(db: sessionmaker[Session]) -> None:
    published = publish(db)
    with db() as session:
        duties = store.duties_between(session, MONDAY, MONDAY + timedelta(weeks=6))
    # From now to the hand-off an hour later, then six Monday-09:00 weeks.
    assert duties[0].start == MONDAY
    assert duties[1].start == datetime(2026, 11, 30, 9, tzinfo=ROME)
    assert all(b.start == a.end for a, b in itertools.pairwise(duties))
    holders = [d.user_id for d in duties[1:]]
    assert sorted(holders[:3]) == ["UADA", "UBOB", "UCY"]
    assert all(a != b for a, b in itertools.pairwise(holders))
    assert len(published.changes) == len(duties)


def test_replanning_keeps_the_duty_under_way_and_pinned_swaps(db: sessionmaker[Session]) -> None:
    publish(db)
    tuesday = MONDAY + timedelta(days=1)
    with transaction(db) as session:
        current = store.duty_at(session, tuesday)
        assert current is not None and current.user_id is not None
        later = store.duties_between(
            session, tuesday + timedelta(weeks=2), tuesday + timedelta(weeks=2, hours=1)
        )[0]
        taker = next(m for m in ("UADA", "UBOB", "UCY") if m != later.user_id)
        swap = swaps.offer_swap(
            session,
            later.id,
            from_user=later.user_id or "",
            to_user=taker,
            now=tuesday,
            expires_in=timedelta(days=2),
        )
        swaps.answer_swap(session, swap.id, user=taker, accept=True, now=tuesday, approval=False)
        # Someone goes on leave; the manager re-plans from now.
        store.add_time_off(
            session, current.user_id, date(2026, 12, 21), date(2026, 12, 27), by=current.user_id, now=tuesday
        )
        preview = store.preview_plan(session, CALENDAR, WEEK, now=tuesday, until=tuesday + timedelta(weeks=6))
        store.publish_plan(session, preview, by="UMGR", now=tuesday)
        assert store.duty_at(session, tuesday) == current
        assert store.duty(session, later.id).user_id == taker  # type: ignore[union-attr]
        week_off = store.duty_at(session, datetime(2026, 12, 23, 23, tzinfo=ROME))
        assert week_off is not None and week_off.user_id != current.user_id


def test_time_off_is_checked_and_reports_clashing_duties(db: sessionmaker[Session]) -> None:
    publish(db)
    with transaction(db) as session:
        mine = store.duties_of(session, "UADA", since=MONDAY)[0]
        local_first = mine.start.astimezone(ROME).date()
        added = store.add_time_off(
            session, "UADA", local_first, local_first + timedelta(days=2), by="UADA", now=MONDAY
        )
        assert [d.id for d in added.clashes] == [mine.id]
        with pytest.raises(RotaError, match="before it starts"):
            store.add_time_off(session, "UADA", date(2026, 12, 5), date(2026, 12, 1), by="UADA", now=MONDAY)
        with pytest.raises(RotaError, match="already over"):
            store.add_time_off(session, "UADA", date(2026, 1, 1), date(2026, 1, 2), by="UADA", now=MONDAY)
        with pytest.raises(RotaError, match="not on the rota"):
            store.add_time_off(
                session, "UNOBODY", date(2026, 12, 5), date(2026, 12, 6), by="UNOBODY", now=MONDAY
            )
        with pytest.raises(RotaError, match="manager"):
            store.cancel_time_off(session, added.time_off.id, by="UBOB", manager=False, now=MONDAY)
        store.cancel_time_off(session, added.time_off.id, by="UADA", manager=False, now=MONDAY)
        assert store.time_off_list(session, user_id="UADA", since=MONDAY) == []


def test_a_swap_offer_is_accepted_declined_or_expires(db: sessionmaker[Session]) -> None:
    publish(db)
    with transaction(db) as session:
        first, second = store.duties_of(session, "UADA", since=MONDAY)[:2]
        offer = swaps.offer_swap(
            session, first.id, from_user="UADA", to_user="UBOB", now=MONDAY, expires_in=timedelta(hours=48)
        )
        with pytest.raises(RotaError, match="open request"):
            swaps.offer_swap(
                session, first.id, from_user="UADA", to_user="UCY", now=MONDAY, expires_in=timedelta(hours=1)
            )
        with pytest.raises(RotaError) as wrong_person:
            swaps.answer_swap(session, offer.id, user="UCY", accept=True, now=MONDAY, approval=False)
        # The error carries the data; the sentence (with its mention) is written at the Slack edge.
        assert re.search("made to <@UBOB>", rota_error_text(wrong_person.value))
        with pytest.raises(RotaError, match="only offer a duty you hold"):
            swaps.offer_swap(
                session, first.id, from_user="UBOB", to_user="UCY", now=MONDAY, expires_in=timedelta(hours=1)
            )
        declined = swaps.answer_swap(session, offer.id, user="UBOB", accept=False, now=MONDAY, approval=False)
        assert declined.swap.status == "declined" and declined.applied is None
        late = swaps.offer_swap(
            session, second.id, from_user="UADA", to_user="UCY", now=MONDAY, expires_in=timedelta(hours=1)
        )
        expired = swaps.expire_swaps(session, MONDAY + timedelta(hours=2))
        assert [s.id for s in expired] == [late.id]
        with pytest.raises(RotaError, match="already expired"):
            swaps.answer_swap(
                session, late.id, user="UCY", accept=True, now=MONDAY + timedelta(hours=2), approval=False
            )
        again = swaps.offer_swap(
            session, first.id, from_user="UADA", to_user="UCY", now=MONDAY, expires_in=timedelta(hours=48)
        )
        done = swaps.answer_swap(session, again.id, user="UCY", accept=True, now=MONDAY, approval=False)
        assert done.applied is not None and done.applied.user_id == "UCY" and done.applied.pinned
        assert store.duty(session, first.id).user_id == "UCY"  # type: ignore[union-attr]


def test_a_swap_refuses_a_colleague_on_time_off(db: sessionmaker[Session]) -> None:
    publish(db)
    with transaction(db) as session:
        mine = next(
            d for d in store.duties_of(session, "UADA", since=MONDAY) if d.end - d.start > timedelta(days=1)
        )
        day = mine.start.astimezone(ROME).date() + timedelta(days=2)
        store.add_time_off(session, "UBOB", day, day, by="UBOB", now=MONDAY)
        with pytest.raises(RotaError, match="time off"):
            swaps.offer_swap(
                session, mine.id, from_user="UADA", to_user="UBOB", now=MONDAY, expires_in=timedelta(hours=1)
            )


def test_covering_a_duty_under_way_splits_it_and_approval_waits_for_a_manager(
    db: sessionmaker[Session],
) -> None:
    publish(db)
    wednesday = MONDAY + timedelta(days=2)
    with transaction(db) as session:
        current = store.duty_at(session, wednesday)
        assert current is not None
        coverer = next(m for m in ("UADA", "UBOB", "UCY") if m != current.user_id)
        asked = swaps.cover_duty(session, current.id, user=coverer, now=wednesday, approval=True)
        assert asked.swap.status == "awaiting_approval" and asked.applied is None
        assert store.duty_at(session, wednesday) == current
        decided = swaps.decide_swap(session, asked.swap.id, manager="UMGR", approve=True, now=wednesday)
        assert decided.under_way and decided.applied is not None
        assert store.duty(session, current.id).end == wednesday  # type: ignore[union-attr]
        taken = store.duty_at(session, wednesday)
        assert taken is not None and (taken.user_id, taken.start, taken.end) == (
            coverer,
            wednesday,
            current.end,
        )


def test_ledger_settles_each_duty_once_with_exact_days(db: sessionmaker[Session]) -> None:
    publish(db)
    policy = DaysInLieu()
    after_three_weeks = MONDAY + timedelta(weeks=3, hours=2)
    with transaction(db) as session:
        first = ledger.settle_duties(session, policy, CALENDAR, now=after_three_weeks)
        again = ledger.settle_duties(session, policy, CALENDAR, now=after_three_weeks)
    assert again == []
    # The hour before the first hand-off earns 1/168 of a day (0.01 rounded); each full week one day.
    amounts = sorted((line.user_id, line.amount) for line in first)
    weeks = [a for _, a in amounts if a == Decimal("1.00")]
    assert len(weeks) == 3 and len(first) == 4
    with transaction(db) as session:
        holder = first[-1].user_id
        ledger.take_days(session, holder, [date(2026, 12, 28)], by=holder, now=after_three_weeks)
        ledger.adjust(
            session,
            holder,
            Decimal("-0.5"),
            "correction: half day already paid",
            by="UMGR",
            now=after_three_weeks,
            unit="days",
        )
        with pytest.raises(RotaError, match="reason"):
            ledger.adjust(session, holder, Decimal(1), " ", by="UMGR", now=after_three_weeks, unit="days")
        totals = ledger.balances(session)
        earned = sum((line.amount for line in first if line.user_id == holder), Decimal(0))
        assert totals[(holder, "days")] == earned - 1 - Decimal("0.5")
        exported = list(csv.DictReader(io.StringIO(ledger.ledger_csv(session, {holder: "Someone"}))))
        assert [row["kind"] for row in exported if row["user_id"] == holder][-2:] == ["taken", "adjusted"]
        assert Decimal(exported[-1]["balance"]) == totals[(holder, "days")]
        assert session.scalar(select(LedgerLine).where(LedgerLine.kind == "earned").limit(1)) is not None


def test_csv_export_defuses_formulas(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        ledger.adjust(
            session, "UADA", Decimal(1), '=HYPERLINK("http://x")', by="UMGR", now=MONDAY, unit="days"
        )
        row = next(iter(csv.DictReader(io.StringIO(ledger.ledger_csv(session)))))
    assert row["note"].startswith("'=")


def test_extend_rota_waits_for_a_first_rota_then_tops_it_up(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        assert (
            store.extend_rota(session, CALENDAR, WEEK, now=MONDAY, until=MONDAY + timedelta(weeks=8)) is None
        )
    publish(db, weeks=2)
    with transaction(db) as session:
        end_before = store.rota_end(session)
        before = store.duties_between(session, MONDAY, MONDAY + timedelta(weeks=2))
        extended = store.extend_rota(session, CALENDAR, WEEK, now=MONDAY, until=MONDAY + timedelta(weeks=8))
        assert extended is not None and extended.changes
        assert store.duties_between(session, MONDAY, MONDAY + timedelta(weeks=2)) == before
        assert store.rota_end(session) > end_before  # type: ignore[operator]
        assert session.get(RotaMember, "UADA") is not None


def test_fairness_says_who_is_owed_duty_free_time_against_the_fair_share(db: sessionmaker[Session]) -> None:
    publish(db, weeks=6)  # over Ada, Bob and Cy
    with transaction(db) as session:
        store.sync_roster(session, [*TEAM, StaffMember("UDEE", "Dee", "Europe/Rome")], MONDAY)
        report = fairness_report(session, CALENDAR, WEEK.weights, now=MONDAY, days=90)
        held = len(store.duties_between(session, MONDAY, store.rota_end(session) or MONDAY))
    rows = {r.user_id: r for r in report.rows}
    # The plan's load split four ways: Dee, who joined after it, is owed a quarter of its duties
    # (seven: the week under way, which hands over at 09:00, and the six planned).
    assert held == 7
    assert report.fair_share == pytest.approx(sum(r.total for r in report.rows) / 4)
    assert report.duties_ahead(rows["UDEE"]) == pytest.approx(-7 / 4)
    assert sum(report.duties_ahead(r) or 0.0 for r in report.rows) == pytest.approx(0.0)
    text = " ".join(block["text"]["text"] for block in fairness_blocks(report) if "text" in block)
    assert "under* the fair share (about 1.8 duties)" in text

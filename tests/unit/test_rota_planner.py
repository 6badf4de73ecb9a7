"""The rota planner: duty slots, the hard rules, fairness, pins and the past, and `why`."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.business_hours import BusinessCalendar
from rota.duties import Duty, DutyUnit, duty_slots, next_handoff
from rota.fairness import balance_score
from rota.load import load_of_duty, loads_by_person
from rota.plan_search import CHANGE_PENALTY
from rota.planner import PlanConfig, RotaPlan, plan_rota, plan_rota_greedy
from rota.roster import Person, TimeOff

ROME = ZoneInfo("Europe/Rome")
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
A, B, C = Person("UA"), Person("UB"), Person("UC")
# Ten ordinary weeks in Rome (no holiday, no DST change): each week's load is 147
# (75 weeknight hours + 48 weekend hours × 1.5).
QUIET_START = datetime(2026, 1, 12, 8, tzinfo=UTC)  # Monday 09:00 CET
QUIET_END = datetime(2026, 3, 23, 8, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def weeks(start: datetime = QUIET_START, end: datetime = QUIET_END) -> list[Duty]:
    return duty_slots(CALENDAR, start, end, "week")


def holders(plan: RotaPlan) -> list[str | None]:
    return [duty.person for duty in plan.duties]


# -- duty slots ------------------------------------------------------------------------------------


def test_weekly_slots_hand_off_at_the_first_opening_of_the_week() -> None:
    slots = duty_slots(CALENDAR, utc(2026, 3, 23, 8), utc(2026, 4, 14), "week")
    assert [(s.start, s.end) for s in slots] == [
        (utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)),  # 167 hours: the weekend lost one
        (utc(2026, 3, 30, 7), utc(2026, 4, 7, 7)),  # Easter Monday: hand-off on Tuesday
        (utc(2026, 4, 7, 7), utc(2026, 4, 13, 7)),
        (utc(2026, 4, 13, 7), utc(2026, 4, 20, 7)),
    ]
    assert [load_of_duty(s, CALENDAR) for s in slots] == [145.5, 207.0, 132.0, 147.0]
    assert next_handoff(CALENDAR, utc(2026, 4, 6, 12), "week") == utc(2026, 4, 7, 7)
    # Closed Monday and Tuesday: on Wednesday morning that week's hand-off is still ahead.
    closed = BusinessCalendar.from_spec(
        "mon-fri 09:00-18:00", ROME, days_off={date(2026, 1, 12), date(2026, 1, 13)}
    )
    assert next_handoff(closed, utc(2026, 1, 14, 7), "week") == utc(2026, 1, 14, 8)


def test_nightly_slots_hand_off_every_day_at_opening_time() -> None:
    slots = duty_slots(CALENDAR, utc(2026, 12, 24, 8), utc(2026, 12, 28, 8), "night")
    assert [(s.start, s.end) for s in slots] == [
        (utc(2026, 12, 24, 8), utc(2026, 12, 25, 8)),
        (utc(2026, 12, 25, 8), utc(2026, 12, 26, 8)),  # holidays hand off at the usual 09:00
        (utc(2026, 12, 26, 8), utc(2026, 12, 27, 8)),
        (utc(2026, 12, 27, 8), utc(2026, 12, 28, 8)),
    ]
    # Christmas Eve night: 6 weeknight hours, then 9 holiday hours at double weight.
    assert [load_of_duty(s, CALENDAR) for s in slots] == [24.0, 48.0, 15 * 2.0 + 9 * 1.5, 15 * 1.5 + 9.0]


def test_slots_start_exactly_where_asked_and_cover_without_gaps() -> None:
    start = utc(2026, 3, 4, 13, 17)  # a Wednesday afternoon
    slots = duty_slots(CALENDAR, start, utc(2026, 3, 20), "week")
    assert slots[0].start == start
    assert slots[0].end == utc(2026, 3, 9, 8)
    assert all(a.end == b.start for a, b in pairwise(slots))
    assert slots[-1].end >= utc(2026, 3, 20)
    with pytest.raises(ValueError, match="duty unit"):
        duty_slots(CALENDAR, start, utc(2026, 3, 20), "month")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=2 * 365 * 24).map(lambda h: utc(2026, 1, 1) + timedelta(hours=h)),
    st.integers(min_value=1, max_value=60 * 24),
    st.sampled_from(["week", "night"]),
)
def test_property_slots_cover_after_hours_once(start: datetime, hours: int, unit: DutyUnit) -> None:
    end = start + timedelta(hours=hours)
    slots = duty_slots(CALENDAR, start, end, unit)
    assert slots[0].start == start and slots[-1].start < end <= slots[-1].end
    assert all(a.end == b.start for a, b in pairwise(slots))
    per_slot = [s for slot in slots for s in CALENDAR.after_hours(slot.start, slot.end)]
    whole = CALENDAR.after_hours(start, slots[-1].end)
    assert sum((s.duration for s in per_slot), timedelta()) == sum((s.duration for s in whole), timedelta())
    for slot in slots[1:]:
        # Hand-offs happen at an opening, or at the usual 09:00 on a day without one.
        local = slot.start.astimezone(ROME)
        assert CALENDAR.is_open(slot.start) or (local.hour, local.minute) == (9, 0)


# -- hand-built plans ------------------------------------------------------------------------------


def test_equal_people_take_turns_and_why_explains() -> None:
    plan = plan_rota([C, A, B], weeks(), CALENDAR, replan_from=QUIET_START)
    assert holders(plan) == ["UA", "UB", "UC", "UA", "UB", "UC", "UA", "UB", "UC", "UA"]
    assert dict(plan.loads) == {"UA": 4 * 147.0, "UB": 3 * 147.0, "UC": 3 * 147.0}
    second = plan.assignments[1].why
    assert second is not None
    assert second.summary == "UB: lowest normalised load after this duty (147.0); next UC (147.0)"
    notes = {note.person: note for note in second.candidates}
    assert notes["UA"].normalised_load == 147.0
    assert notes["UA"].excluded == "held the previous duty, and others are free"
    assert notes["UB"].excluded is None and notes["UB"].normalised_if_chosen == 147.0
    assert "UB: 0.0 → 147.0" in str(second)


def test_past_duties_count_towards_the_load() -> None:
    past = [replace(d, person=p) for d, p in zip(weeks(), ["UA", "UB", "UA"], strict=False)]
    future = weeks(past[-1].end, past[-1].end + timedelta(weeks=3))
    plan = plan_rota([A, B, C], past + future, CALENDAR, replan_from=past[-1].end)
    assert holders(plan) == ["UA", "UB", "UA", "UC", "UB", "UC"]


def test_time_off_excludes_for_any_part_of_the_duty() -> None:
    # UB is away only on Sunday 25 January, inside the second week.
    b_in_rome = replace(B, tz=ROME)
    away = TimeOff.for_days(b_in_rome, date(2026, 1, 25), date(2026, 1, 25))
    plan = plan_rota([A, b_in_rome, C], weeks(), CALENDAR, replan_from=QUIET_START, time_off=[away])
    assert holders(plan)[:3] == ["UA", "UC", "UB"]
    why = plan.assignments[1].why
    assert why is not None
    excluded = {n.person: n.excluded for n in why.candidates}
    assert excluded["UB"] == "on time off until 2026-01-26 00:00 (Europe/Rome)"


def test_part_timer_carries_half() -> None:
    half = Person("UC", weight=0.5)
    plan = plan_rota([A, B, half], weeks(), CALENDAR, replan_from=QUIET_START)
    assert [holders(plan).count(p) for p in ("UA", "UB", "UC")] == [4, 4, 2]
    assert set(plan.normalised_loads.values()) == {4 * 147.0}


def test_on_a_tie_the_one_who_has_carried_less_goes_first() -> None:
    # In week three UA (147 so far) and the part-timer UC (0 so far) would both reach 294.
    half = Person("UC", weight=0.5)
    plan = plan_rota([A, B, half], weeks()[:3], CALENDAR, replan_from=QUIET_START)
    assert holders(plan) == ["UA", "UB", "UC"]
    why = plan.assignments[2].why
    assert why is not None
    assert why.summary == (
        "UC: lowest normalised load after this duty (294.0); "
        "next UA (294.0), who has carried more so far (147.0)"
    )


def test_the_same_person_twice_only_when_nobody_else_is_free() -> None:
    away = TimeOff("UB", utc(2026, 1, 19), utc(2026, 1, 26))
    plan = plan_rota([A, B], weeks()[:3], CALENDAR, replan_from=QUIET_START, time_off=[away])
    assert holders(plan) == ["UA", "UA", "UB"]
    why = plan.assignments[1].why
    assert why is not None and why.summary == "UA again: nobody else is free"


def test_minimum_rest_leaves_a_duty_unassigned_with_reasons() -> None:
    nights = duty_slots(CALENDAR, utc(2026, 1, 12, 8), utc(2026, 1, 18, 8), "night")
    config = PlanConfig(unit="night", min_rest=timedelta(days=2))
    plan = plan_rota([A, B], nights, CALENDAR, replan_from=nights[0].start, config=config)
    assert holders(plan) == ["UA", "UB", None, "UA", "UB", None]
    why = plan.unassigned[0].why
    assert why is not None and why.summary == "unassigned: nobody can take it"
    assert [n.excluded for n in why.candidates] == [
        "only 1 d rest after their last duty; needs 2 d",
        "only 0 h rest after their last duty; needs 2 d",
    ]


def test_monthly_limit() -> None:
    february = weeks(utc(2026, 2, 2, 8), utc(2026, 3, 3))  # four weeks in February, then March
    plan = plan_rota(
        [A, B, C], february, CALENDAR, replan_from=february[0].start, config=PlanConfig(max_per_month=1)
    )
    assert holders(plan) == ["UA", "UB", "UC", None, "UA"]
    why = plan.assignments[3].why
    assert why is not None
    assert {n.excluded for n in why.candidates} == {"already has 1 duties in 2026-02 (limit 1)"}


def test_the_month_is_the_persons_own() -> None:
    # The week starting Monday 1 June 09:00 in Rome starts on Sunday 31 May in Honolulu.
    honolulu = Person("UA", tz=ZoneInfo("Pacific/Honolulu"))
    may_end = Duty(utc(2026, 5, 25, 7), utc(2026, 6, 1, 7), "UA", pinned=True)
    june = weeks(utc(2026, 6, 1, 7), utc(2026, 6, 8, 7))
    config = PlanConfig(max_per_month=1)
    plan = plan_rota([honolulu], [may_end, *june], CALENDAR, replan_from=may_end.start, config=config)
    assert holders(plan) == ["UA", None]
    assert (
        plan_rota([A], [may_end, *june], CALENDAR, replan_from=may_end.start, config=config).duties[1].person
        == "UA"
    )


def test_replanning_keeps_the_past_and_pins_and_avoids_their_neighbours() -> None:
    before = plan_rota([A, B, C], weeks(), CALENDAR, replan_from=QUIET_START)
    duties = list(before.duties)
    duties[4] = replace(duties[4], person="UC", pinned=True)  # an accepted swap
    replan_from = duties[3].start
    after = plan_rota([A, B, C], duties, CALENDAR, replan_from=replan_from)
    assert after.duties[:3] == before.duties[:3]
    assert after.duties[4] == duties[4]
    assert after.assignments[4].why is None and after.assignments[0].why is None
    assert after.duties[3].person != "UC" and after.duties[5].person != "UC"
    assert all(a.planned for a in after.assignments[5:])


def test_nobody_free_or_nobody_at_all() -> None:
    slot = weeks()[:1]
    away = [TimeOff(p.id, utc(2026, 1, 1), utc(2026, 2, 1)) for p in (A, B)]
    plan = plan_rota([A, B], slot, CALENDAR, replan_from=QUIET_START, time_off=away)
    assert holders(plan) == [None]
    why = plan.assignments[0].why
    assert why is not None and all(n.excluded and "time off" in n.excluded for n in why.candidates)
    empty = plan_rota([], slot, CALENDAR, replan_from=QUIET_START).assignments[0].why
    assert empty is not None and empty.summary == "unassigned: nobody is on the roster"


def test_until_extends_the_rota_with_the_configured_unit() -> None:
    history = [replace(d, person="UA") for d in weeks()[:1]]
    plan = plan_rota(
        [A, B],
        history,
        CALENDAR,
        replan_from=history[0].end,
        until=utc(2026, 1, 22),
        config=PlanConfig(unit="night"),
    )
    assert [(d.start, d.person) for d in plan.duties] == [
        (history[0].start, "UA"),
        (utc(2026, 1, 19, 8), "UB"),
        (utc(2026, 1, 20, 8), "UA"),
        (utc(2026, 1, 21, 8), "UB"),
    ]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        plan_rota(
            [A],
            [Duty(utc(2026, 1, 1), utc(2026, 1, 3)), Duty(utc(2026, 1, 2), utc(2026, 1, 4))],
            CALENDAR,
            replan_from=utc(2026, 1, 1),
        )
    with pytest.raises(ValueError, match="twice"):
        plan_rota([A, A], [], CALENDAR, replan_from=utc(2026, 1, 1))
    with pytest.raises(ValueError, match="weight"):
        Person("UZ", weight=0)
    with pytest.raises(ValueError, match="monthly limit"):
        PlanConfig(max_per_month=0)


# -- properties ------------------------------------------------------------------------------------

PEOPLE_IDS = ["U1", "U2", "U3", "U4", "U5", "U6"]
EPOCH = utc(2026, 1, 5, 8)  # a Monday opening


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    unit: DutyUnit = draw(st.sampled_from(["week", "night"]))
    count = draw(st.integers(min_value=2, max_value=16 if unit == "week" else 40))
    start = EPOCH + timedelta(weeks=draw(st.integers(min_value=0, max_value=48)))
    slots = duty_slots(CALENDAR, start, start + timedelta(hours=1), unit)
    while len(slots) < count:
        slots += duty_slots(CALENDAR, slots[-1].end, slots[-1].end + timedelta(hours=1), unit)
    n_people = draw(st.integers(min_value=1, max_value=len(PEOPLE_IDS)))
    people = [Person(pid, weight=draw(st.sampled_from([0.5, 1.0, 1.5]))) for pid in PEOPLE_IDS[:n_people]]
    ids = [p.id for p in people]
    span = slots[-1].end - slots[0].start
    time_off: list[TimeOff] = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        offset = draw(st.integers(min_value=0, max_value=int(span.total_seconds() // 3600)))
        length = draw(st.integers(min_value=1, max_value=24 * 14))
        off_start = slots[0].start + timedelta(hours=offset)
        time_off.append(TimeOff(draw(st.sampled_from(ids)), off_start, off_start + timedelta(hours=length)))
    duties = list(slots)
    for index in draw(st.sets(st.integers(min_value=0, max_value=count - 1), max_size=count // 3)):
        duties[index] = replace(duties[index], person=draw(st.sampled_from(ids)), pinned=True)
    cut = draw(st.integers(min_value=0, max_value=count - 1))
    for index in range(cut):
        if duties[index].person is None and draw(st.booleans()):
            duties[index] = replace(duties[index], person=draw(st.sampled_from(ids)))
    # Stray names on unpinned future duties must be replanned, not kept.
    for index in range(cut, count):
        if not duties[index].pinned and draw(st.booleans()):
            duties[index] = replace(duties[index], person=draw(st.sampled_from(ids)))
    rest_hours = draw(st.sampled_from([0, 0, 24, 72, 24 * 7]))
    cap = draw(st.sampled_from([None, None, 1, 2, 5]))
    config = PlanConfig(unit=unit, min_rest=timedelta(hours=rest_hours), max_per_month=cap)
    return {
        "people": people,
        "duties": duties,
        "time_off": time_off,
        "replan_from": duties[cut].start,
        "config": config,
    }


def run(scenario: dict, planner: Callable[..., RotaPlan] = plan_rota) -> RotaPlan:
    return planner(
        scenario["people"],
        scenario["duties"],
        CALENDAR,
        replan_from=scenario["replan_from"],
        time_off=scenario["time_off"],
        config=scenario["config"],
    )


def run_greedy(scenario: dict) -> RotaPlan:
    return run(scenario, plan_rota_greedy)


def on_time_off(scenario: dict, person: str, duty: Duty) -> bool:
    return any(off.person == person and off.overlaps(duty.start, duty.end) for off in scenario["time_off"])


EXAMPLES = settings(max_examples=60, deadline=None)


@EXAMPLES
@given(scenarios())
def test_property_nobody_planned_while_on_time_off(scenario: dict) -> None:
    for assignment in run(scenario).assignments:
        if assignment.planned and assignment.duty.person is not None:
            assert not on_time_off(scenario, assignment.duty.person, assignment.duty)


@EXAMPLES
@given(scenarios())
def test_property_past_and_pinned_duties_are_kept_and_slots_unchanged(scenario: dict) -> None:
    plan = run(scenario)
    given_duties = sorted(scenario["duties"], key=lambda d: d.start)
    assert [(d.start, d.end) for d in plan.duties] == [(d.start, d.end) for d in given_duties]
    for before, after in zip(given_duties, plan.assignments, strict=True):
        kept = before.pinned or before.start < scenario["replan_from"]
        assert after.planned is not kept
        if kept:
            assert after.duty == before


@EXAMPLES
@given(scenarios())
def test_property_hard_rules_hold_for_planned_duties(scenario: dict) -> None:
    plan = run(scenario)
    config: PlanConfig = scenario["config"]
    people = {p.id: p for p in scenario["people"]}
    duties = plan.duties
    for assignment in plan.assignments:
        person = assignment.duty.person
        if not assignment.planned or person is None:
            if assignment.planned:
                assert assignment.why is not None and all(n.excluded for n in assignment.why.candidates)
            continue
        theirs = [d for d in duties if d.person == person and d != assignment.duty]
        for other in theirs:
            gap = max(other.start - assignment.duty.end, assignment.duty.start - other.end)
            assert gap >= config.min_rest
        if config.max_per_month is not None:
            tz = people[person].tz
            month = (assignment.duty.start.astimezone(tz).year, assignment.duty.start.astimezone(tz).month)
            same_month = [
                d for d in theirs if (d.start.astimezone(tz).year, d.start.astimezone(tz).month) == month
            ]
            assert len(same_month) + 1 <= config.max_per_month


@EXAMPLES
@given(scenarios())
def test_property_twice_in_a_row_only_without_an_alternative(scenario: dict) -> None:
    # Checked independently of `why`, with time off as the only hard rule that can bar someone.
    scenario = {**scenario, "config": replace(scenario["config"], min_rest=timedelta(0), max_per_month=None)}
    plan = run(scenario)
    duties = plan.duties
    ids = [p.id for p in scenario["people"]]
    for index in range(1, len(duties)):
        person = duties[index].person
        if person is None or person != duties[index - 1].person:
            continue
        # The repeat was decided at the later duty if it was planned, else at the earlier one.
        decided = index if plan.assignments[index].planned else index - 1
        if not plan.assignments[decided].planned:
            continue
        adjacent = {duties[i].person for i in (decided - 1, decided + 1) if 0 <= i < len(duties)}
        for other in ids:
            if other != person:
                # Someone else was free only if they were not away and would not repeat themselves.
                assert on_time_off(scenario, other, duties[decided]) or other in adjacent


@EXAMPLES
@given(scenarios(), st.randoms(use_true_random=False))
def test_property_deterministic_whatever_the_input_order(scenario: dict, rnd: random.Random) -> None:
    first = run(scenario)
    assert run(scenario) == first
    shuffled = {**scenario}
    for key in ("people", "duties", "time_off"):
        items = list(scenario[key])
        rnd.shuffle(items)
        shuffled[key] = items
    assert run(shuffled) == first


PLAIN_CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ZoneInfo("UTC"))  # every week weighs 147


def spread_when_planned_from_scratch(
    calendar: BusinessCalendar, n_people: int, start: datetime, end: datetime, unit: DutyUnit
) -> tuple[float, RotaPlan]:
    slots = duty_slots(calendar, start, end, unit)
    plan = plan_rota([Person(pid) for pid in PEOPLE_IDS[:n_people]], slots, calendar, replan_from=start)
    assert not plan.unassigned
    loads = plan.normalised_loads.values()
    return max(loads) - min(loads), plan


@settings(max_examples=30, deadline=None)
@given(
    st.integers(min_value=2, max_value=6),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=2, max_value=52),
)
def test_property_equal_people_equal_duties_stay_within_one_duty(
    n_people: int, start_week: int, n_weeks: int
) -> None:
    start = utc(2026, 1, 5, 9) + timedelta(weeks=start_week)  # a Monday opening in UTC
    spread, plan = spread_when_planned_from_scratch(
        PLAIN_CALENDAR, n_people, start, start + timedelta(weeks=n_weeks, hours=-1), "week"
    )
    assert {a.load for a in plan.assignments} == {147.0}
    assert spread <= 147.0


@settings(max_examples=30, deadline=None)
@given(
    st.integers(min_value=3, max_value=6),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=2, max_value=52),
    st.sampled_from(["week", "night"]),
)
def test_property_equal_people_stay_within_one_duty_plus_its_variation(
    n_people: int, start_week: int, n_periods: int, unit: DutyUnit
) -> None:
    # Duties differ (DST weeks, Easter, Christmas nights), and the twice-in-a-row rule
    # can send a duty past the lightest person when they have just held one: e.g. with
    # three people, the one who took the 145.5 DST week is skipped for the 207 Easter week
    # and the spread reaches 208.5. The excess stays within the spread of duty loads.
    start = EPOCH + timedelta(weeks=start_week)
    period = timedelta(weeks=1) if unit == "week" else timedelta(days=1)
    spread, plan = spread_when_planned_from_scratch(
        CALENDAR, n_people, start, start + n_periods * period - timedelta(hours=1), unit
    )
    heaviest = max(a.load for a in plan.assignments)
    lightest = min(a.load for a in plan.assignments)
    assert spread <= heaviest + (heaviest - lightest) + 1e-9


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=40), st.integers(min_value=2, max_value=52))
def test_property_two_people_alternate(start_week: int, n_weeks: int) -> None:
    start = EPOCH + timedelta(weeks=start_week)
    _, plan = spread_when_planned_from_scratch(
        CALENDAR, 2, start, start + timedelta(weeks=n_weeks, hours=-1), "week"
    )
    assert all(a.duty.person != b.duty.person for a, b in pairwise(plan.assignments))


# -- fairness against round-robin ------------------------------------------------------------------


def round_robin(people: list[Person], duties: list[Duty], time_off: list[TimeOff]) -> list[Duty]:
    """The rotation most on-call tools use, as in benchmarks/bench_rota_plan.py: each duty to the
    next person in roster order who is not away during any of it, carrying on after whoever took it."""
    roster = sorted(people, key=lambda p: p.id)
    turn = 0
    planned = []
    for duty in sorted(duties, key=lambda d: d.start):
        holder = None
        for step in range(len(roster)):
            candidate = roster[(turn + step) % len(roster)]
            if not any(o.person == candidate.id and o.overlaps(duty.start, duty.end) for o in time_off):
                holder, turn = candidate.id, turn + step + 1
                break
        planned.append(replace(duty, person=holder))
    return planned


def balance(calendar: BusinessCalendar, people: list[Person], duties: Iterable[Duty]) -> float:
    loads = loads_by_person(duties, calendar, people=[p.id for p in people])
    return balance_score(loads, {p.id: p.weight for p in people})


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=len(PEOPLE_IDS)),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=1, max_value=60),
)
def test_property_as_even_as_round_robin_where_round_robin_is_at_its_best(
    n_people: int, start_week: int, n_weeks: int
) -> None:
    """Equal people, duties of equal load, nobody away, nothing held yet: the planner's
    balance score equals round-robin's (both give everyone their count of duties, within one).

    "No worse than round-robin on every input" is not true, and no planner that evens out
    loads could promise it. Hypothesis finds three kinds of input where round-robin's
    rota scores higher, one in ten of `scenarios()`:

    - The balance score is not Schur-concave: making loads more even can lower it. With
      history (0, 0, 4) and three equal duties, the planner evens out to (1, 2, 4) and
      scores 0.42; round-robin, blind to history, makes (1, 1, 5) and scores 0.47. Two
      people at 0 likewise count as perfectly even, which favours piling duties on few
      people when there are fewer duties than people.
    - The planner looks at loads so far, not at time off ahead: on a tie it may pass over
      someone who will be away for the rest of the range, where round-robin happens to
      pick them.
    - Round-robin can be lucky with uneven duties: five people on nights cycle through the
      weekdays and are exactly even every 35 nights, while the planner is only ever
      guaranteed to be within one duty.

    What does hold on every input is the rule below
    (`test_property_each_duty_goes_to_the_lightest_free_person`); round-robin breaks it
    whenever weights differ or someone comes back from time off, which is where the
    benchmark's year of 30 people shows the planner's lead (0.95 against 0.73 for nights).
    """
    start = utc(2026, 1, 5, 9) + timedelta(weeks=start_week)  # a Monday opening in UTC
    slots = duty_slots(PLAIN_CALENDAR, start, start + timedelta(weeks=n_weeks, hours=-1), "week")
    people = [Person(pid) for pid in PEOPLE_IDS[:n_people]]
    plan = plan_rota(people, slots, PLAIN_CALENDAR, replan_from=start)
    ours = balance(PLAIN_CALENDAR, people, plan.duties)
    assert ours >= balance(PLAIN_CALENDAR, people, round_robin(people, slots, [])) - 1e-9


@EXAMPLES
@given(scenarios())
def test_property_each_duty_goes_to_the_lightest_free_person(scenario: dict) -> None:
    """Checked from the rota alone, not from `why`: when a planned duty went to someone, no
    one else who was free and would not repeat a neighbour's duty would have ended lighter
    (normalised) after taking it. Loads count every duty kept as given, wherever it falls,
    as the planner's do. So nobody ends more than one duty above anyone who could have taken
    their last one: weights, time off and history are all paid back."""
    # Rest and the monthly cap are hard rules too; leaving them out keeps "free" checkable here.
    # This is the rule of the greedy first pass (`plan_rota_greedy`): the whole-window search
    # that `plan_rota` runs after it may give a duty to someone heavier at that date, so that
    # the window ends more even (a part-timer back from Christmas is not left behind).
    scenario = {**scenario, "config": replace(scenario["config"], min_rest=timedelta(0), max_per_month=None)}
    plan = run_greedy(scenario)
    people = {p.id: p for p in scenario["people"]}
    carried = dict.fromkeys(people, 0.0)
    for assignment in plan.assignments:
        if not assignment.planned and assignment.duty.person in carried:
            carried[assignment.duty.person] += assignment.load
    for index, assignment in enumerate(plan.assignments):
        holder, duty = assignment.duty.person, assignment.duty
        if not assignment.planned or holder is None:
            continue
        # Only kept duties have a holder when the planner reaches this one.
        after_it = plan.assignments[index + 1] if index + 1 < len(plan.assignments) else None
        neighbours = {
            plan.assignments[index - 1].duty.person if index > 0 else None,
            after_it.duty.person if after_it is not None and not after_it.planned else None,
        }
        if holder not in neighbours:
            for other in people.values():
                if other.id == holder or other.id in neighbours or on_time_off(scenario, other.id, duty):
                    continue
                theirs = (carried[other.id] + assignment.load) / other.weight
                assert (carried[holder] + assignment.load) / people[holder].weight <= theirs + 1e-6
        carried[holder] += assignment.load


# -- the whole-window search -----------------------------------------------------------------------

CHRISTMAS_TEAM = [Person(f"U{c}", weight=0.5 if c == "E" else 1.0, tz=ROME) for c in "ABCDE"]
CHRISTMAS_AWAY = [TimeOff.for_days(CHRISTMAS_TEAM[1], date(2026, 12, 19), date(2027, 1, 9))]
AUTUMN = utc(2026, 9, 7, 7)  # Monday 09:00 in Rome


def christmas_weeks() -> list[Duty]:
    """26 weeks from September, UE at weight 0.5, UB away three weeks over Christmas (issue #18)."""
    return weeks(AUTUMN, AUTUMN + timedelta(weeks=26, hours=1))


def balance_of(plan: RotaPlan, people: list[Person]) -> float:
    return balance_score(dict(plan.loads), {p.id: p.weight for p in people})


def changed(before: Iterable[Duty], after: Iterable[Duty]) -> int:
    return sum(a.person != b.person for a, b in zip(before, after, strict=True))


def test_the_search_evens_out_what_the_greedy_pass_cannot_see_coming() -> None:
    greedy = plan_rota_greedy(
        CHRISTMAS_TEAM, christmas_weeks(), CALENDAR, replan_from=AUTUMN, time_off=CHRISTMAS_AWAY
    )
    plan = plan_rota(CHRISTMAS_TEAM, christmas_weeks(), CALENDAR, replan_from=AUTUMN, time_off=CHRISTMAS_AWAY)
    assert balance_of(greedy, CHRISTMAS_TEAM) == pytest.approx(0.930, abs=5e-4)
    assert balance_of(plan, CHRISTMAS_TEAM) == pytest.approx(0.972, abs=5e-4)
    moved = [
        a for a, g in zip(plan.assignments, greedy.assignments, strict=True) if a.duty.person != g.duty.person
    ]
    assert moved
    for assignment in plan.assignments:
        why = assignment.why
        assert why is not None and [n.person for n in why.candidates] == ["UA", "UB", "UC", "UD", "UE"]
        holder = next(n for n in why.candidates if n.person == assignment.duty.person)
        assert holder.excluded is None
        # Loads over the whole window: without this duty, then with it (the holder's is where it ends).
        assert holder.normalised_if_chosen == pytest.approx(plan.normalised_loads[holder.person])
    first = greedy.duties[plan.assignments.index(moved[0])].person
    assert moved[0].why is not None
    assert moved[0].why.summary.startswith(
        f"{moved[0].duty.person}: moved from {first} to even out the whole window"
    )
    # Nobody planned while away, whatever the search moved.
    away = {
        n.excluded for a in plan.assignments if a.duty.start.year == 2027 and a.why for n in a.why.candidates
    }
    assert "on time off until 2027-01-10 00:00 (Europe/Rome)" in away


def test_replanning_reshuffles_for_a_large_gain() -> None:
    # The published rota is the greedy one; evening it out gains 0.05 of balance for 6 changes.
    published = plan_rota_greedy(
        CHRISTMAS_TEAM, christmas_weeks(), CALENDAR, replan_from=AUTUMN, time_off=CHRISTMAS_AWAY
    )
    plan = plan_rota(
        CHRISTMAS_TEAM, list(published.duties), CALENDAR, replan_from=AUTUMN, time_off=CHRISTMAS_AWAY
    )
    changes = changed(published.duties, plan.duties)
    gain = balance_of(plan, CHRISTMAS_TEAM) - balance_of(published, CHRISTMAS_TEAM)
    assert changes == 6 and gain > 0.04
    assert gain / changes > CHANGE_PENALTY
    kept = [a for a, p in zip(plan.assignments, published.duties, strict=True) if a.duty.person == p.person]
    assert kept and all(
        a.why is not None and "unchanged from the published rota" in a.why.summary for a in kept
    )


def test_replanning_keeps_the_published_rota_for_a_small_gain() -> None:
    # UA's weight goes from 1 to 1.02 after publication: re-planning from scratch would even
    # out the window a little (+0.015) by changing 14 duties, 0.001 a change: not worth it.
    published = plan_rota(
        CHRISTMAS_TEAM, christmas_weeks(), CALENDAR, replan_from=AUTUMN, time_off=CHRISTMAS_AWAY
    )
    duties = list(published.duties)
    # Nothing changed: previewing again shows the published rota (Preview and Publish agree).
    again = plan_rota(CHRISTMAS_TEAM, duties, CALENDAR, replan_from=AUTUMN, time_off=CHRISTMAS_AWAY)
    assert again.duties == published.duties
    team = [replace(p, weight=1.02) if p.id == "UA" else p for p in CHRISTMAS_TEAM]
    kept = plan_rota(team, duties, CALENDAR, replan_from=AUTUMN, time_off=CHRISTMAS_AWAY)
    assert kept.duties == published.duties
    free = plan_rota(
        team,
        duties,
        CALENDAR,
        replan_from=AUTUMN,
        time_off=CHRISTMAS_AWAY,
        config=PlanConfig(change_penalty=0),
    )
    changes = changed(published.duties, free.duties)
    gain = balance_of(free, team) - balance_of(kept, team)
    assert changes > 0 and 0 < gain / changes < CHANGE_PENALTY


def test_the_change_penalty_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="change penalty"):
        PlanConfig(change_penalty=-0.1)


def objective(plan: RotaPlan, scenario: dict) -> tuple[int, float]:
    """Duties covered, then balance of everything held (history included) less the change penalty."""
    people = scenario["people"]
    loads = {p.id: plan.loads.get(p.id, 0.0) for p in people}
    given = sorted(scenario["duties"], key=lambda d: d.start)
    on_roster = {p.id for p in people}
    changes = sum(
        1
        for before, after in zip(given, plan.assignments, strict=True)
        if after.planned and before.person in on_roster and after.duty.person != before.person
    )
    covered = sum(1 for a in plan.assignments if a.duty.person is not None)
    return covered, balance_score(loads, {p.id: p.weight for p in people}) - CHANGE_PENALTY * changes


@EXAMPLES
@given(scenarios())
def test_property_the_search_never_does_worse_than_the_greedy_pass(scenario: dict) -> None:
    ours, greedy = run(scenario), run_greedy(scenario)
    (covered, value), (greedy_covered, greedy_value) = objective(ours, scenario), objective(greedy, scenario)
    assert covered >= greedy_covered
    if covered == greedy_covered:
        assert value >= greedy_value - 1e-9
    # Without a published rota to keep, that is the balance score itself.
    ours, greedy = run(unpublished(scenario)), run_greedy(unpublished(scenario))
    if len(ours.unassigned) == len(greedy.unassigned):
        assert (
            balance_score(dict(ours.normalised_loads)) >= balance_score(dict(greedy.normalised_loads)) - 1e-9
        )


def unpublished(scenario: dict) -> dict:
    """The scenario without names on the duties to re-plan: nothing published to keep."""
    replan_from = scenario["replan_from"]
    duties = [d if d.pinned or d.start < replan_from else replace(d, person=None) for d in scenario["duties"]]
    return {**scenario, "duties": duties}


def _exchange_that_widened_the_gap() -> dict:
    # Found by hypothesis: five part-timers and one full-timer, six weeks, the last an hour
    # short (DST). Exchanging the full-timer's first week for a part-timer's last raised the
    # score a little, but carried load from the lighter to the heavier and widened the spread.
    utc = ZoneInfo("UTC")
    people = [Person(f"U{n}", 0.5, utc) for n in range(1, 6)] + [Person("U6", 1.0, utc)]
    starts = [datetime(2026, 2, 16, 8, tzinfo=UTC) + timedelta(weeks=k) for k in range(6)]
    ends = [*starts[1:], datetime(2026, 3, 30, 7, tzinfo=UTC)]
    return {
        "people": people,
        "duties": [Duty(start, end, None, False) for start, end in zip(starts, ends, strict=True)],
        "time_off": [],
        "replan_from": starts[0],
        "config": PlanConfig(unit="week"),
    }


@EXAMPLES
@given(scenarios())
@example(_exchange_that_widened_the_gap())
def test_property_the_search_only_evens_out(scenario: dict) -> None:
    # Moves go from heavier to lighter, so the spread of normalised loads never grows.
    ours, greedy = run(unpublished(scenario)), run_greedy(unpublished(scenario))
    if ours.normalised_loads and len(ours.unassigned) == len(greedy.unassigned):
        spread = max(ours.normalised_loads.values()) - min(ours.normalised_loads.values())
        greedy_spread = max(greedy.normalised_loads.values()) - min(greedy.normalised_loads.values())
        assert spread <= greedy_spread + 1e-6

"""Planning the rota: how long it takes, and how even it is next to round-robin, the
greedy first pass and the best a long search finds.

Inputs (Mon–Fri 09:00–18:00 in Europe/Rome with its public holidays):

- 5 people over 26 weeks, one at weight 0.5, one away three weeks over Christmas;
- 7 people, 13 weeks of nights, rest >= 24 h, at most 5 a month, one away 10 days;
- 12 people (three part-timers), half a year of nights, long absences, rest >= 24 h, at most 4 a month;
- 30 people (four part-timers at weight 0.5, four time zones, each away about 25
  days in random blocks): a year of weeks, a year of nights, and a year of nights with
  2 days' rest and at most 8 a month;
- 28 of them, 52 weeks, at most one a month.

For each: the balance score of round-robin, of the greedy pass (`plan_rota_greedy`),
of the planner (`plan_rota`: greedy, then local search), and of the best found by a
long search (iterated local search, several seeds: a reference, not a proven
ceiling), the planner's distance from it, and the time to plan (best of several runs,
duty slots included; wall clock, and the process's CPU time, which a busy machine
does not inflate).

Round-robin is what most on-call tools do: walk the roster in order, give each
duty to the next person who is not away for any part of it, and carry on after
whoever took it. It knows neither weights, load, rest nor caps, so its rota may
break the last two.

    .venv/bin/python -m benchmarks.bench_rota_plan          # seed 2026
    .venv/bin/python -m benchmarks.bench_rota_plan 7        # another seed
    .venv/bin/python -m benchmarks.bench_rota_plan 2026 5   # 5 kicks per seed: a quicker, weaker reference
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

from benchmarks._setup import machine
from bot.business_hours import BusinessCalendar
from rota.duties import Duty, duty_slots
from rota.fairness import balance_score
from rota.load import loads_by_person
from rota.planner import PlanConfig, RotaPlan, plan_rota, plan_rota_greedy, plan_rota_long_search
from rota.roster import Person, TimeOff

DEFAULT_SEED = 2026
ROME = ZoneInfo("Europe/Rome")
ZONES = [ROME, ZoneInfo("Europe/London"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]
PEOPLE = 30
PART_TIMERS = 4
DAYS_AWAY = 25
# Monday 5 January 2026 09:00 in Rome to Monday 4 January 2027 09:00: 52 weeks, 364 nights,
# both ending on a hand-off, so no duty is cut by the end of the year.
YEAR_START = datetime(2026, 1, 5, 8, tzinfo=UTC)
YEAR_END = datetime(2027, 1, 4, 8, tzinfo=UTC)
RUNS = 3
TARGET_SECONDS = 1.0
TARGET_DISTANCE = 0.01
KICKS = 30


@dataclass(frozen=True)
class Scenario:
    calendar: BusinessCalendar
    people: list[Person]
    time_off: list[TimeOff]


def public_holidays() -> list[date]:
    """Italy's public holidays in the year planned, but those on a Sunday: exactly ten."""
    found = holidays.country_holidays("IT", years=[YEAR_START.year, YEAR_END.year])
    first, last = YEAR_START.astimezone(ROME).date(), YEAR_END.astimezone(ROME).date()
    chosen = sorted(day for day in found if first <= day < last and day.weekday() != 6)
    assert len(chosen) == 10, chosen
    return chosen


def make_scenario(seed: int) -> Scenario:
    rnd = random.Random(seed)
    calendar = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, days_off=public_holidays())
    part_timers = set(rnd.sample(range(PEOPLE), PART_TIMERS))
    people = [
        Person(f"U{n:02d}", weight=0.5 if n in part_timers else 1.0, tz=ZONES[n % len(ZONES)])
        for n in range(PEOPLE)
    ]
    time_off = [off for person in people for off in _time_off(rnd, person)]
    return Scenario(calendar, people, time_off)


def _time_off(rnd: random.Random, person: Person) -> list[TimeOff]:
    """About DAYS_AWAY local days in blocks of a day to two weeks, not overlapping."""
    first_day = YEAR_START.astimezone(person.tz).date()
    days_in_year = (YEAR_END - YEAR_START).days
    taken: set[int] = set()
    blocks: list[TimeOff] = []
    while len(taken) < DAYS_AWAY:
        length = min(rnd.choice([1, 1, 2, 3, 5, 7, 10, 14]), DAYS_AWAY - len(taken))
        begin = rnd.randrange(days_in_year - length)
        span = set(range(begin, begin + length))
        # One day either side stays free, so blocks never merge into a longer one.
        if span & taken or (begin - 1) in taken or (begin + length) in taken:
            continue
        taken |= span
        start = first_day + timedelta(days=begin)
        blocks.append(TimeOff.for_days(person, start, start + timedelta(days=length - 1)))
    return blocks


def round_robin(people: Sequence[Person], slots: Sequence[Duty], time_off: Sequence[TimeOff]) -> list[Duty]:
    """Each duty to the next person in roster order who is not away during any of it.

    After a skip the rotation carries on from whoever took the duty, as PagerDuty's
    and Opsgenie's rotations do; nobody free leaves the duty unassigned.
    """
    away: dict[str, list[TimeOff]] = {person.id: [] for person in people}
    for off in time_off:
        away[off.person].append(off)
    turn = 0
    planned: list[Duty] = []
    for slot in slots:
        holder = None
        for step in range(len(people)):
            candidate = people[(turn + step) % len(people)]
            if not any(off.overlaps(slot.start, slot.end) for off in away[candidate.id]):
                holder = candidate.id
                turn += step + 1
                break
        planned.append(replace(slot, person=holder))
    return planned


@dataclass(frozen=True)
class Case:
    label: str
    scenario: Scenario
    start: datetime
    end: datetime
    config: PlanConfig


def score(case: Case, duties: Sequence[Duty]) -> float:
    ids = [person.id for person in case.scenario.people]
    loads = loads_by_person(duties, case.scenario.calendar, people=ids, start=case.start, end=case.end)
    return balance_score(loads, {person.id: person.weight for person in case.scenario.people})


def plan(case: Case, planner: Callable[..., RotaPlan] = plan_rota, **options: object) -> RotaPlan:
    return planner(
        case.scenario.people,
        [],
        case.scenario.calendar,
        replan_from=case.start,
        until=case.end,
        time_off=case.scenario.time_off,
        config=case.config,
        **options,
    )


def small_team(seed: int) -> Case:
    """5 people over 26 weeks, UE at weight 0.5, UB away three weeks over Christmas."""
    del seed  # hand-made
    calendar = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
    people = [Person(f"U{c}", weight=0.5 if c == "E" else 1.0, tz=ROME) for c in "ABCDE"]
    away = [TimeOff.for_days(people[1], date(2026, 12, 19), date(2027, 1, 9))]
    start = datetime(2026, 9, 7, 7, tzinfo=UTC)  # Monday 09:00 in Rome
    end = start + timedelta(weeks=26) + timedelta(hours=1)  # the CET hand-off, an hour later in UTC
    return Case(
        "5 people, 26 weeks, part-timer, 3 weeks away at Christmas",
        Scenario(calendar, people, away),
        start,
        end,
        PlanConfig("week"),
    )


def night_team(seed: int) -> Case:
    """7 people, 13 weeks of nights from October to Christmas, rest >= 24 h, at most 5 a month."""
    rnd = random.Random(seed)
    calendar = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
    people = [Person(f"U{n}", tz=ROME) for n in range(7)]
    first = date(2026, 10, 5) + timedelta(days=rnd.randrange(60))
    away = [TimeOff.for_days(people[rnd.randrange(7)], first, first + timedelta(days=9))]
    start = datetime(2026, 10, 5, 7, tzinfo=UTC)
    config = PlanConfig("night", min_rest=timedelta(hours=24), max_per_month=5)
    return Case(
        "7 people, 13 weeks of nights, rest >= 24 h, <= 5 a month",
        Scenario(calendar, people, away),
        start,
        start + timedelta(weeks=13, hours=1),
        config,
    )


def mid_team(seed: int) -> Case:
    """12 people, three part-timers, half a year of nights with long absences, rest and a cap."""
    rnd = random.Random(seed)
    calendar = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
    people = [Person(f"U{n:02d}", weight=0.5 if n < 3 else 1.0, tz=ZONES[n % 2]) for n in range(12)]
    away = []
    for person in people[:6]:  # six of them away four to eight weeks: parental leave, a sabbatical
        first = date(2026, 10, 1) + timedelta(days=rnd.randrange(150))
        away.append(TimeOff.for_days(person, first, first + timedelta(days=rnd.randrange(28, 57))))
    start = datetime(2026, 10, 5, 7, tzinfo=UTC)
    config = PlanConfig("night", min_rest=timedelta(hours=24), max_per_month=4)
    return Case(
        "12 people, 26 weeks of nights, long absences, rest >= 24 h, <= 4 a month",
        Scenario(calendar, people, away),
        start,
        start + timedelta(weeks=26, hours=1),
        config,
    )


def year_cases(seed: int) -> list[Case]:
    scenario = make_scenario(seed)
    fewer = Scenario(
        scenario.calendar, scenario.people[:28], [o for o in scenario.time_off if o.person < "U28"]
    )
    return [
        Case("30 people, a year of weeks", scenario, YEAR_START, YEAR_END, PlanConfig("week")),
        Case("30 people, a year of nights", scenario, YEAR_START, YEAR_END, PlanConfig("night")),
        Case(
            "30 people, a year of nights, rest >= 2 days, <= 8 a month",
            scenario,
            YEAR_START,
            YEAR_END,
            PlanConfig("night", min_rest=timedelta(days=2), max_per_month=8),
        ),
        Case(
            "28 people, 52 weeks, <= 1 a month",
            fewer,
            YEAR_START,
            YEAR_END,
            PlanConfig("week", max_per_month=1),
        ),
    ]


def timed(case: Case) -> tuple[RotaPlan, float, float]:
    """The plan, and the best wall-clock and CPU seconds over RUNS runs."""
    walls, cpus = [], []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        result = plan(case)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, min(walls), min(cpus)


def report(case: Case, kicks: int) -> bool:
    result, wall, cpu = timed(case)
    again = plan(case)
    slots = duty_slots(case.scenario.calendar, case.start, case.end, case.config.unit)
    ours = score(case, result.duties)
    greedy = score(case, plan(case, plan_rota_greedy).duties)
    robin = score(case, round_robin(case.scenario.people, slots, case.scenario.time_off))
    best = max(score(case, plan(case, plan_rota_long_search, kicks=kicks).duties), ours)
    distance = best - ours
    is_big = len(case.scenario.people) >= 28
    fast = not is_big or cpu < TARGET_SECONDS
    met = fast and distance <= TARGET_DISTANCE and ours > robin and ours >= greedy and again == result
    print(
        f"  {case.label}: {len(slots)} duties, {len(result.unassigned)} left unassigned\n"
        f"    round-robin {robin:.3f}   greedy {greedy:.3f}   planner {ours:.3f}   best found {best:.3f}"
        f"   distance {distance:.3f}\n"
        f"    time to plan {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU (best of {RUNS})"
        f"   same plan twice: {'yes' if again == result else 'NO'}   targets {'met' if met else 'NOT met'}"
    )
    return met


def main(argv: Sequence[str]) -> None:
    seed = int(argv[0]) if argv else DEFAULT_SEED
    kicks = int(argv[1]) if len(argv) > 1 else KICKS
    print(f"rota planning ({machine()})")
    print(
        f"  seed {seed}; best found: {kicks} kicks for each of 3 seeds; "
        f"targets: within {TARGET_DISTANCE} of it, above round-robin and greedy, "
        f"< {TARGET_SECONDS:.0f} s CPU for 28-30 people over a year"
    )
    cases = [small_team(seed), night_team(seed), mid_team(seed), *year_cases(seed)]
    met = [report(case, kicks) for case in cases]
    print(f"  targets met on {sum(met)} of {len(met)} inputs")


if __name__ == "__main__":
    main(sys.argv[1:])

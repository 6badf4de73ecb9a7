"""Planning a year of the rota: how long it takes, and how even it is next to round-robin.

30 people (four part-timers at weight 0.5, four time zones), each away about 25
calendar days in random blocks; Mon–Fri 09:00–18:00 in Europe/Rome with 10 public
holidays; one year of weekly duties, then one of nightly duties. Reported for each:
the time to plan (best of several runs, slots included) and the balance score of
the planner's rota next to round-robin's on the same input, in the same run. For
weekly duties it also prints the ceiling: the best score whole weeks allow this team.
Last, for information, nights again with 2 days' rest and at most 8 a month.

Round-robin is what most on-call tools do: walk the roster in order, give each
duty to the next person who is not away for any part of it, and carry on after
whoever took it. It knows neither weights nor load.

    .venv/bin/python -m benchmarks.bench_rota_plan          # seed 2026
    .venv/bin/python -m benchmarks.bench_rota_plan 7        # another seed
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

from benchmarks._setup import machine
from bot.business_hours import BusinessCalendar
from rota.duties import Duty, DutyUnit, duty_slots
from rota.fairness import balance_score
from rota.load import loads_by_person
from rota.planner import PlanConfig, RotaPlan, plan_rota
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
RUNS = 5
TARGET_SECONDS = 1.0
TARGET_SCORE = 0.95


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


def whole_duty_ceiling(people: Sequence[Person], duties: int) -> float:
    """The best balance score possible if every duty weighed the same.

    Loads then come in whole duties, and when the duties do not divide evenly some
    people must hold one more than others. Searched over how many people of each weight
    hold 0, 1, 2… duties, up to one more than a fair share rounded up.
    """
    by_weight = sorted(Counter(person.weight for person in people).items())
    total_weight = sum(person.weight for person in people)
    best = 0.0

    def search(classes: list[tuple[float, int]], left: int, loads: Counter[float]) -> None:
        nonlocal best
        if not classes:
            if left == 0:
                everyone = [load for load, n in loads.items() for _ in range(n)]
                best = max(best, balance_score({f"p{i}": load for i, load in enumerate(everyone)}))
            return
        (weight, size), rest = classes[0], classes[1:]
        most = math.ceil(duties * weight / total_weight) + 1
        for split in _splits(size, most + 1):
            held = sum(count * n for count, n in enumerate(split))
            if held <= left:
                search(
                    rest, left - held, loads + Counter({count / weight: n for count, n in enumerate(split)})
                )

    search(by_weight, duties, Counter())
    return best


def _splits(size: int, bins: int) -> list[tuple[int, ...]]:
    """Every way to put `size` people into `bins` ordered bins."""
    if bins == 1:
        return [(size,)]
    return [(first, *rest) for first in range(size + 1) for rest in _splits(size - first, bins - 1)]


def score(scenario: Scenario, duties: Sequence[Duty]) -> float:
    ids = [person.id for person in scenario.people]
    loads = loads_by_person(duties, scenario.calendar, people=ids, start=YEAR_START, end=YEAR_END)
    return balance_score(loads, {person.id: person.weight for person in scenario.people})


def plan(scenario: Scenario, config: PlanConfig) -> RotaPlan:
    return plan_rota(
        scenario.people,
        [],
        scenario.calendar,
        replan_from=YEAR_START,
        until=YEAR_END,
        time_off=scenario.time_off,
        config=config,
    )


def report(scenario: Scenario, label: str, config: PlanConfig) -> None:
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        result = plan(scenario, config)
        times.append(time.perf_counter() - began)
    best = min(times)
    slots = duty_slots(scenario.calendar, YEAR_START, YEAR_END, config.unit)
    ours = score(scenario, result.duties)
    theirs = score(scenario, round_robin(scenario.people, slots, scenario.time_off))
    unassigned = len(result.unassigned)
    met = best < TARGET_SECONDS and ours >= TARGET_SCORE and ours > theirs
    ceiling = whole_duty_ceiling(scenario.people, len(slots)) if config.unit == "week" else None
    print(f"  {label}: {len(slots)} duties, {unassigned} left unassigned")
    target = f"best of {RUNS}; target < {TARGET_SECONDS * 1000:.0f}"
    print(f"    time to plan        {best * 1000:7.0f} ms   ({target})")
    print(f"    balance, planner    {ours:7.3f}      (target >= {TARGET_SCORE})")
    print(f"    balance, round-robin{theirs:7.3f}      planner / round-robin = {ours / theirs:.2f}")
    if ceiling is not None:
        print(f"    ceiling             {ceiling:7.3f}      (best possible if every week weighed the same)")
    verdict = "met" if met else "NOT met"
    if not met and ceiling is not None and ceiling < TARGET_SCORE:
        verdict += f": {TARGET_SCORE} is out of reach for whole weeks shared by {len(scenario.people)} people"
    print(f"    targets {verdict}")


def main(argv: Sequence[str]) -> None:
    seed = int(argv[0]) if argv else DEFAULT_SEED
    scenario = make_scenario(seed)
    days_away = sum((off.end - off.start).total_seconds() / 86400 for off in scenario.time_off)
    away = days_away / len(scenario.people)
    print(f"rota planning, one year, {PEOPLE} people ({machine()})")
    print(
        f"  seed {seed}; {PART_TIMERS} part-timers at weight 0.5; {len(ZONES)} time zones; "
        f"{away:.1f} days away each on average; {len(scenario.calendar.days_off)} public holidays"
    )
    units: list[DutyUnit] = ["week", "night"]
    for unit in units:
        report(scenario, unit, PlanConfig(unit=unit))
    print("  for information, with hard rules round-robin does not know:")
    report(
        scenario,
        "night, rest >= 2 days, <= 8 a month",
        PlanConfig("night", min_rest=timedelta(days=2), max_per_month=8),
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Who holds which duty: a fair rota over the whole window, explained.

A first, greedy pass (`plan_rota_greedy`) fills duties in time order, each by the
eligible person whose normalised load (weighted hours carried, divided by their
weight) would be lowest after taking it. Loads count every duty kept as given: the
past, and pinned duties (accepted swaps, a manager's choice) wherever they fall, so
someone with a pinned Christmas week is spared before it as well as after.

The greedy pass cannot look ahead (a part-timer back from Christmas ends the window
far behind), so `plan_rota` then evens out the whole window with a local search
(`rota.plan_search`) under the same hard rules. When re-planning over a published
rota, each changed duty costs `PlanConfig.change_penalty` of balance score, so the
quarter is not reshuffled for a negligible gain.

Hard rules, checked for every candidate:
- nobody on time off for any part of the duty;
- at least `min_rest` between the end of one of their duties and the start of the next;
- at most `max_per_month` duties starting in one calendar month of their own time zone;
- not the holder of the duty just before or just after, unless nobody else is free.

When nobody passes, the duty stays unassigned and its `why` says why.
On equal loads after the duty it goes to whoever has carried less so far, then to
the lower user id; the search is bounded by moves, not time: the same input always
gives the same rota, so a preview and its publication agree.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import pairwise
from types import MappingProxyType

from bot.business_hours import BusinessCalendar
from rota.duties import DUTY_UNITS, Duty, DutyUnit, duty_slots
from rota.load import DEFAULT_WEIGHTS, LoadWeights, load_of_duty
from rota.plan_search import CHANGE_PENALTY, NOBODY, OUTSIDER, Problem, free_for, improve, long_search, rank
from rota.roster import Person, TimeOff, as_utc

# Loads are sums of floats; rounding before comparing keeps ties ties, so they go
# to the stable key rather than to the last bits of an addition.
_KEY_DIGITS = 9


@dataclass(frozen=True)
class PlanConfig:
    unit: DutyUnit = "week"
    weights: LoadWeights = DEFAULT_WEIGHTS
    min_rest: timedelta = timedelta(0)
    max_per_month: int | None = None
    # Balance score a re-plan must gain per duty it changes in the published rota.
    change_penalty: float = CHANGE_PENALTY

    def __post_init__(self) -> None:
        if self.unit not in DUTY_UNITS:
            raise ValueError(f"duty unit must be one of {', '.join(DUTY_UNITS)}, got {self.unit!r}")
        if self.min_rest < timedelta(0):
            raise ValueError("the minimum rest cannot be negative")
        if self.max_per_month is not None and self.max_per_month < 1:
            raise ValueError(f"the monthly limit must be at least 1, got {self.max_per_month}")
        if not self.change_penalty >= 0:
            raise ValueError(f"the change penalty cannot be negative, got {self.change_penalty}")


@dataclass(frozen=True)
class CandidateNote:
    """One person as the planner saw them for one duty."""

    person: str
    normalised_load: float  # before this duty
    normalised_if_chosen: float
    excluded: str | None = None  # why they could not take it; None if they could


@dataclass(frozen=True)
class Why:
    summary: str
    candidates: tuple[CandidateNote, ...]

    def __str__(self) -> str:
        lines = [self.summary]
        for note in self.candidates:
            line = f"- {note.person}: {note.normalised_load:.1f}"
            line += f" ({note.excluded})" if note.excluded else f" → {note.normalised_if_chosen:.1f}"
            lines.append(line)
        return "\n".join(lines)


@dataclass(frozen=True)
class Assignment:
    duty: Duty
    load: float
    why: Why | None = None  # None when the duty was kept as given (past or pinned)

    @property
    def planned(self) -> bool:
        return self.why is not None


@dataclass(frozen=True)
class RotaPlan:
    assignments: tuple[Assignment, ...]
    loads: Mapping[str, float] = field(default_factory=dict)  # weighted hours, everyone who held a duty
    normalised_loads: Mapping[str, float] = field(default_factory=dict)  # load / weight, roster only

    @property
    def duties(self) -> tuple[Duty, ...]:
        return tuple(a.duty for a in self.assignments)

    @property
    def unassigned(self) -> tuple[Assignment, ...]:
        return tuple(a for a in self.assignments if a.duty.person is None)


def plan_rota(
    people: Iterable[Person],
    duties: Iterable[Duty],
    calendar: BusinessCalendar,
    *,
    replan_from: datetime,
    until: datetime | None = None,
    time_off: Iterable[TimeOff] = (),
    config: PlanConfig | None = None,
) -> RotaPlan:
    """Assign every duty that starts at or after `replan_from` and is not pinned, evening out the window.

    Earlier and pinned duties are returned unchanged. With `until`, duties of
    `config.unit` are added after the last one given so the rota reaches `until`.
    The greedy plan is improved by local search; with a published rota (names on the
    duties being re-planned) the search also starts from it, and a changed duty must
    buy `config.change_penalty` of balance score.
    """
    setup = _Setup.of(people, duties, calendar, replan_from, until, time_off, config)
    greedy, greedy_whys = _fill(setup)
    problem = _problem(setup)
    starts = [_encode(setup, greedy)]
    if any(person is not None for person in setup.incumbents):
        published, _ = _fill(setup, prefer=setup.incumbents)
        starts.append(_encode(setup, published))
    penalty = setup.config.change_penalty
    finals = [improve(problem, start, change_penalty=penalty) for start in starts]
    best = max(finals, key=lambda holders: rank(problem, holders, penalty))  # the first on a tie
    if best == starts[0]:
        return _result(setup, greedy, greedy_whys)
    final = _decode(setup, greedy, best)
    return _result(setup, final, _explain(setup, problem, best, final, greedy))


def plan_rota_greedy(
    people: Iterable[Person],
    duties: Iterable[Duty],
    calendar: BusinessCalendar,
    *,
    replan_from: datetime,
    until: datetime | None = None,
    time_off: Iterable[TimeOff] = (),
    config: PlanConfig | None = None,
) -> RotaPlan:
    """The first pass alone: each duty in time order to the lightest free person.

    Kept for comparison (the benchmark) and for the tests of its rules; `plan_rota`
    starts from it.
    """
    setup = _Setup.of(people, duties, calendar, replan_from, until, time_off, config)
    return _result(setup, *_fill(setup))


@dataclass(frozen=True)
class _Setup:
    """The duties to plan, in time order, and what is known of them before planning."""

    roster: list[Person]
    config: PlanConfig
    time_off: tuple[TimeOff, ...]
    state: list[Duty]  # planned duties without a holder
    planned: list[bool]
    loads: list[float]
    incumbents: list[str | None]  # holder in the published rota of each planned duty

    @classmethod
    def of(
        cls,
        people: Iterable[Person],
        duties: Iterable[Duty],
        calendar: BusinessCalendar,
        replan_from: datetime,
        until: datetime | None,
        time_off: Iterable[TimeOff],
        config: PlanConfig | None,
    ) -> _Setup:
        config = config or PlanConfig()
        roster = _roster(people)
        replan_from = as_utc(replan_from)
        existing = _in_order(duties)
        if until is not None:
            begin = max(existing[-1].end, replan_from) if existing else replan_from
            existing += duty_slots(calendar, begin, until, config.unit)
        planned = [not (duty.pinned or duty.start < replan_from) for duty in existing]
        state = [
            replace(duty, person=None) if plan else duty for duty, plan in zip(existing, planned, strict=True)
        ]
        on_roster = {person.id for person in roster}
        incumbents = [
            duty.person if plan and duty.person in on_roster else None
            for duty, plan in zip(existing, planned, strict=True)
        ]
        loads = [load_of_duty(duty, calendar, config.weights) for duty in state]
        return cls(roster, config, tuple(time_off), state, planned, loads, incumbents)


def _fill(setup: _Setup, prefer: list[str | None] | None = None) -> tuple[list[Duty], list[Why | None]]:
    """The greedy pass; with `prefer`, each duty keeps that holder wherever the rules allow."""
    state = list(setup.state)
    book = _Book(setup.roster, setup.time_off, setup.config)
    for duty, load, plan in zip(state, setup.loads, setup.planned, strict=True):
        if not plan and duty.person is not None:
            book.record(duty.person, duty, load)
    whys: list[Why | None] = []
    for index, duty in enumerate(state):
        if not setup.planned[index]:
            whys.append(None)
            continue
        neighbours = {
            "held the previous duty": state[index - 1].person if index > 0 else None,
            "holds the next duty": state[index + 1].person if index + 1 < len(state) else None,
        }
        chosen, why = book.choose(duty, setup.loads[index], neighbours, prefer[index] if prefer else None)
        if chosen is not None:
            duty = replace(duty, person=chosen)
            state[index] = duty
            book.record(chosen, duty, setup.loads[index])
        whys.append(why)
    return state, whys


def _result(setup: _Setup, final: list[Duty], whys: list[Why | None]) -> RotaPlan:
    roster = setup.roster
    assignments = tuple(
        Assignment(duty, load, why) for duty, load, why in zip(final, setup.loads, whys, strict=True)
    )
    totals: dict[str, float] = {person.id: 0.0 for person in roster}
    for duty, load in zip(final, setup.loads, strict=True):
        if duty.person is not None:
            totals[duty.person] = totals.get(duty.person, 0.0) + load
    normalised = {person.id: totals[person.id] / person.weight for person in roster}
    return RotaPlan(assignments, MappingProxyType(totals), MappingProxyType(normalised))


def _encode(setup: _Setup, duties: list[Duty]) -> list[int]:
    index = {person.id: n for n, person in enumerate(setup.roster)}
    return [NOBODY if duty.person is None else index.get(duty.person, OUTSIDER) for duty in duties]


def _decode(setup: _Setup, duties: list[Duty], holders: list[int]) -> list[Duty]:
    ids = [person.id for person in setup.roster]
    return [
        duty if not setup.planned[index] else replace(duty, person=None if who < 0 else ids[who])
        for index, (duty, who) in enumerate(zip(duties, holders, strict=True))
    ]


def _problem(setup: _Setup) -> Problem:
    """The planning problem as indices, for the search: who may hold what, and when."""
    state, roster = setup.state, setup.roster
    starts = [duty.start for duty in state]
    ends = [duty.end for duty in state]
    away = {person.id: [False] * len(state) for person in roster}
    for off in setup.time_off:
        if off.person in away:
            # Duties do not overlap, so those meeting [off.start, off.end) are a contiguous run.
            for index in range(bisect.bisect_right(ends, off.start), bisect.bisect_left(starts, off.end)):
                away[off.person][index] = True
    by_zone: dict[str, tuple[int, ...]] = {}
    for person in roster:
        if str(person.tz) not in by_zone:
            local = [start.astimezone(person.tz) for start in starts]
            by_zone[str(person.tz)] = tuple(moment.year * 12 + moment.month - 1 for moment in local)
    rest = setup.config.min_rest
    windows = None
    if rest > timedelta(0):
        windows = tuple(
            (bisect.bisect_right(ends, duty.start - rest), bisect.bisect_left(starts, duty.end + rest))
            for duty in state
        )
    index = {person.id: n for n, person in enumerate(roster)}
    return Problem(
        weights=tuple(person.weight for person in roster),
        loads=tuple(setup.loads),
        planned=tuple(setup.planned),
        away=tuple(tuple(away[person.id]) for person in roster),
        months=tuple(by_zone[str(person.tz)] for person in roster),
        max_per_month=setup.config.max_per_month,
        rest_windows=windows,
        incumbent=tuple(NOBODY if who is None else index[who] for who in setup.incumbents),
    )


def _explain(
    setup: _Setup, problem: Problem, holders: list[int], final: list[Duty], greedy: list[Duty]
) -> list[Why | None]:
    """Why each planned duty went where the search left it, over the whole window."""
    roster = setup.roster
    free = free_for(problem, holders)
    book = _Book(roster, setup.time_off, setup.config)
    for duty, load in zip(final, setup.loads, strict=True):
        if duty.person is not None:
            book.record(duty.person, duty, load)
    ends = {person.id: book.loads[person.id] / person.weight for person in roster}
    mean = sum(ends.values()) / len(ends) if ends else 0.0
    whys: list[Why | None] = []
    for index, duty in enumerate(final):
        if not setup.planned[index]:
            whys.append(None)
            continue
        load, holder = setup.loads[index], duty.person
        neighbours = {
            "held the previous duty": final[index - 1].person if index > 0 else None,
            "holds the next duty": final[index + 1].person if index + 1 < len(final) else None,
        }
        notes = []
        for n, person in enumerate(roster):
            without = ends[person.id] - (load / person.weight if person.id == holder else 0.0)
            # The words come from the greedy pass's rules; the quick check spares asking for them.
            reason = None if person.id == holder or free(n, index) else book.breach(person, duty)
            if reason is None and person.id != holder:
                reason = next((words for words, who in neighbours.items() if who == person.id), None)
            notes.append(CandidateNote(person.id, without, without + load / person.weight, reason))
        whys.append(
            Why(
                _summary(
                    setup,
                    index,
                    holder,
                    setup.incumbents[index] or greedy[index].person,
                    ends,
                    mean,
                    neighbours,
                ),
                tuple(notes),
            )
        )
    return whys


def _summary(
    setup: _Setup,
    index: int,
    holder: str | None,
    first: str | None,
    ends: Mapping[str, float],
    mean: float,
    neighbours: Mapping[str, str | None],
) -> str:
    """One sentence a manager can check against the loads listed under it (over the whole window).

    `first` is who held the duty before the search: in the published rota, else after the greedy pass.
    """
    if holder is None:
        return "unassigned: nobody can take it" if setup.roster else "unassigned: nobody is on the roster"
    if holder in neighbours.values():
        return f"{holder} again: nobody else is free"
    if holder == setup.incumbents[index]:
        return f"{holder}: unchanged from the published rota; a change would not even out the window enough"
    if first is not None and first != holder:
        return (
            f"{holder}: moved from {first} to even out the whole window "
            f"({holder} ends it at {ends[holder]:.1f}, {first} at {ends[first]:.1f})"
        )
    return f"{holder}: evens out the whole window (ends it at {ends[holder]:.1f}; team mean {mean:.1f})"


class _Book:
    """What the planner knows about each person so far: load, duties held, months used."""

    def __init__(self, roster: list[Person], time_off: Iterable[TimeOff], config: PlanConfig) -> None:
        self.roster = roster
        self.config = config
        self.people = {person.id: person for person in roster}
        self.loads = {person.id: 0.0 for person in roster}
        self.held: dict[str, list[tuple[datetime, datetime]]] = {person.id: [] for person in roster}
        self.months: Counter[tuple[str, int, int]] = Counter()
        self.time_off: dict[str, list[TimeOff]] = {person.id: [] for person in roster}
        for off in sorted(time_off, key=lambda o: (o.start, o.end)):
            if off.person in self.time_off:
                self.time_off[off.person].append(off)
        # Each person's time off merged into disjoint spans: one bisection says whether a duty meets any.
        self.away: dict[str, tuple[list[datetime], list[datetime]]] = {}
        for person_id, offs in self.time_off.items():
            starts: list[datetime] = []
            ends: list[datetime] = []
            for off in offs:
                if ends and off.start <= ends[-1]:
                    ends[-1] = max(ends[-1], off.end)
                else:
                    starts.append(off.start)
                    ends.append(off.end)
            self.away[person_id] = (starts, ends)

    def record(self, person_id: str, duty: Duty, load: float) -> None:
        person = self.people.get(person_id)
        if person is None:
            return  # someone who has left the roster: their history no longer shapes anyone's duties
        self.loads[person_id] += load
        bisect.insort(self.held[person_id], (duty.start, duty.end))
        self.months[self._month(person, duty)] += 1

    def choose(
        self, duty: Duty, load: float, neighbours: Mapping[str, str | None], prefer: str | None = None
    ) -> tuple[str | None, Why]:
        if not self.roster:
            return None, Why("unassigned: nobody is on the roster", ())
        breaches = {person.id: self.breach(person, duty) for person in self.roster}
        free = [person for person in self.roster if breaches[person.id] is None]
        repeat = {person_id: reason for reason, person_id in neighbours.items() if person_id is not None}
        fresh = [person for person in free if person.id not in repeat]
        pool = fresh or free

        current = {person.id: self.loads[person.id] / person.weight for person in self.roster}
        after = {person.id: (self.loads[person.id] + load) / person.weight for person in self.roster}

        # On equal loads after the duty, the one who has carried less so far: a part-timer
        # at 0 ties with full-timers one duty ahead of them (one week is two for them), and
        # losing every such tie to a lower id could leave them at 0 while everyone else works.
        ranked = sorted(
            pool, key=lambda p: (round(after[p.id], _KEY_DIGITS), round(current[p.id], _KEY_DIGITS), p.id)
        )
        notes = []
        for person in self.roster:
            reason = breaches[person.id]
            if reason is None and fresh and person.id in repeat:
                reason = f"{repeat[person.id]}, and others are free"
            notes.append(CandidateNote(person.id, current[person.id], after[person.id], reason))

        if not ranked:
            return None, Why("unassigned: nobody can take it", tuple(notes))
        chosen = ranked[0]
        kept = next((person for person in ranked if person.id == prefer), None)
        if kept is not None:
            return kept.id, Why(f"{kept.id}: unchanged from the published rota", tuple(notes))
        if not fresh:
            others = "everyone free would repeat a duty" if len(free) > 1 else "nobody else is free"
            summary = f"{chosen.id} again: {others}"
        else:
            summary = f"{chosen.id}: lowest normalised load after this duty ({after[chosen.id]:.1f})"
            if len(ranked) > 1:
                runner_up = ranked[1]
                summary += f"; next {runner_up.id} ({after[runner_up.id]:.1f})"
                tied = round(after[runner_up.id], _KEY_DIGITS) == round(after[chosen.id], _KEY_DIGITS)
                if tied and round(current[runner_up.id], _KEY_DIGITS) > round(
                    current[chosen.id], _KEY_DIGITS
                ):
                    summary += f", who has carried more so far ({current[runner_up.id]:.1f})"
        return chosen.id, Why(summary, tuple(notes))

    def breach(self, person: Person, duty: Duty) -> str | None:
        """The first hard rule `person` taking `duty` would break, in words; None if none."""
        starts, ends = self.away[person.id]
        at = bisect.bisect_left(starts, duty.end) - 1
        if at >= 0 and ends[at] > duty.start:
            for off in self.time_off[person.id]:
                if off.overlaps(duty.start, duty.end):
                    return f"on time off until {off.end.astimezone(person.tz):%Y-%m-%d %H:%M} ({person.tz})"
        rest = self.config.min_rest
        if rest > timedelta(0):
            held = self.held[person.id]
            at = bisect.bisect_left(held, (duty.start, duty.end))
            needs = f"needs {_span(rest)}"
            if at > 0 and (gap := duty.start - held[at - 1][1]) < rest:
                return f"only {_span(gap)} rest after their last duty; {needs}"
            if at < len(held) and (gap := held[at][0] - duty.end) < rest:
                return f"only {_span(gap)} rest before their next duty; {needs}"
        cap = self.config.max_per_month
        if cap is not None:
            _, year, month = key = self._month(person, duty)
            if self.months[key] >= cap:
                return f"already has {self.months[key]} duties in {year}-{month:02d} (limit {cap})"
        return None

    @staticmethod
    def _month(person: Person, duty: Duty) -> tuple[str, int, int]:
        local = duty.start.astimezone(person.tz)
        return person.id, local.year, local.month


def _roster(people: Iterable[Person]) -> list[Person]:
    roster = sorted(people, key=lambda p: p.id)
    for before, after in pairwise(roster):
        if before.id == after.id:
            raise ValueError(f"{before.id} is on the roster twice")
    return roster


def _in_order(duties: Iterable[Duty]) -> list[Duty]:
    ordered = sorted(duties, key=lambda d: (d.start, d.end))
    for before, after in pairwise(ordered):
        if after.start < before.end:
            raise ValueError(f"duties overlap at {after.start.isoformat()}")
    return ordered


def _span(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    days, hours = divmod(hours, 24)
    if days and hours:
        return f"{days} d {hours} h"
    return f"{days} d" if days else f"{hours} h"


def plan_rota_long_search(
    people: Iterable[Person],
    duties: Iterable[Duty],
    calendar: BusinessCalendar,
    *,
    replan_from: datetime,
    until: datetime | None = None,
    time_off: Iterable[TimeOff] = (),
    config: PlanConfig | None = None,
    seeds: Iterable[int] = (1, 2, 3),
    kicks: int = 50,
) -> RotaPlan:
    """The best plan a long randomised search finds: a reference for the benchmark, not for planning.

    Seconds to minutes, and it depends on the seeds; `plan_rota` must stay close to it.
    """
    setup = _Setup.of(people, duties, calendar, replan_from, until, time_off, config)
    greedy, _ = _fill(setup)
    problem = _problem(setup)
    penalty = setup.config.change_penalty
    start = improve(problem, _encode(setup, greedy), change_penalty=penalty)
    tries = [long_search(problem, start, seed=seed, kicks=kicks, change_penalty=penalty) for seed in seeds]
    best = max([start, *tries], key=lambda holders: rank(problem, holders, penalty))
    final = _decode(setup, greedy, best)
    return _result(setup, final, _explain(setup, problem, best, final, greedy))

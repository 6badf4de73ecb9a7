"""Evening out a whole planning window: a deterministic local search over a rota.

The greedy planner fills duties in date order and cannot look ahead: a part-timer
can end the window two duties behind, or a holiday week land on someone already
ahead. This search starts from a complete plan and, duty by duty in date order,
applies the best of two kinds of move:

- give the duty to someone else;
- swap it with another person's duty of a different load (which shifts the
  difference between the two loads from one to the other).

Either move must carry load from someone heavier to someone lighter without
leaving them further apart (normalised): the score counts two people at 0 as even,
and could otherwise rise by piling duties on a few while others hold none.

The objective is the balance score (`rota.fairness`) of every roster member's
normalised load over everything they hold (history and pinned duties included),
minus `change_penalty` for each planned duty whose holder differs from the one
published, so re-planning reshuffles a duty only for a gain worth the change.

Moves keep every hard rule the greedy planner enforces (time off, rest, monthly
cap) and never put anyone on two duties in a row; a repeat the start plan had to
make stays only while it is still forced. Only strict improvements are accepted,
candidates are tried in a fixed order (largest gain, then person, then date), and
the work is bounded by passes and moves, never by a clock: the same input always
gives the same plan, so Preview and Publish agree.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

NOBODY = -1  # an unassigned duty
OUTSIDER = -2  # a kept duty held by someone no longer on the roster

# The balance score lost per planned duty that differs from the published rota: a
# swap (two changes) must even out the score by more than 0.004 to be made.
CHANGE_PENALTY = 0.002
# Bounds on the work, in passes over the duties and in moves applied: generous for a
# year of nights (a search settles in under ten passes), and independent of the clock.
MAX_PASSES = 40
MAX_MOVES_PER_DUTY = 8
# Gains below this are rounding noise in the incremental score, not improvements.
_EPS = 1e-10
_TINY = 1e-300
_SLACK = 1e-9


@dataclass(frozen=True)
class Problem:
    """Everything the search needs, as indices: people in roster order, duties in date order."""

    weights: tuple[float, ...]  # per person
    loads: tuple[float, ...]  # per duty, weighted hours
    planned: tuple[bool, ...]  # per duty: may the search change its holder
    away: tuple[tuple[bool, ...], ...]  # [person][duty]: on time off for part of it
    months: tuple[tuple[int, ...], ...]  # [person][duty]: year * 12 + month in their own zone
    max_per_month: int | None
    # Per duty, [lo, hi): the duties too close to it for the minimum rest; None without a rest rule.
    rest_windows: tuple[tuple[int, int], ...] | None
    incumbent: tuple[int, ...]  # per duty: who holds it in the published rota, NOBODY if none


def free_for(problem: Problem, holders: Sequence[int]) -> Callable[[int, int], bool]:
    """`free(person, duty)`: may `person` take `duty` in this plan under time off, rest and cap?"""
    return _Search(problem, holders, 0.0).can_take


def rank(
    problem: Problem, holders: Sequence[int], change_penalty: float = CHANGE_PENALTY
) -> tuple[int, float]:
    """How good a plan is: first duties covered, then the objective."""
    return _Search(problem, holders, change_penalty).value()


def improve(
    problem: Problem,
    holders: Sequence[int],
    *,
    change_penalty: float = CHANGE_PENALTY,
    max_passes: int = MAX_PASSES,
    max_moves: int | None = None,
) -> list[int]:
    """The plan local search reaches from `holders`, which must keep the hard rules."""
    state = _Search(problem, holders, change_penalty)
    budget = max_moves if max_moves is not None else MAX_MOVES_PER_DUTY * max(1, sum(problem.planned))
    state.descend(max_passes, budget)
    return list(state.h)


def long_search(
    problem: Problem,
    holders: Sequence[int],
    *,
    seed: int,
    kicks: int,
    change_penalty: float = CHANGE_PENALTY,
) -> list[int]:
    """Iterated local search, for a reference: the best of `kicks` random shakes each followed by a descent.

    Far too slow to plan with (seconds to minutes); the benchmark uses it to see how
    far the planner stays from the best a long search finds.
    """
    rnd = random.Random(seed)
    state = _Search(problem, holders, change_penalty)
    state.descend(MAX_PASSES * 5, 10**9)
    best, best_value = list(state.h), state.value()
    for _ in range(kicks):
        state = _Search(problem, best, change_penalty)
        state.shake(rnd, rnd.randint(2, max(3, len(problem.loads) // 8)))
        state.descend(MAX_PASSES * 5, 10**9)
        value = state.value()
        if value[0] > best_value[0] or (value[0] == best_value[0] and value[1] > best_value[1] + _EPS):
            best, best_value = list(state.h), value
    return best


def _ratio(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """min/max elementwise; two zeros are even (1.0), as in `rota.fairness`.

    Adding a tiny constant to both sides gives 1.0 for two zeros without a branch, and
    leaves any other ratio of loads (whole minutes at least) unchanged to the last bit.
    """
    return (np.minimum(u, v) + _TINY) / (np.maximum(u, v) + _TINY)


class _Search:
    def __init__(self, problem: Problem, holders: Sequence[int], change_penalty: float) -> None:
        self.p = problem
        self.penalty = change_penalty
        self.n = len(problem.weights)
        self.d = len(problem.loads)
        self.w = np.array(problem.weights, dtype=float)
        self.h = list(holders)
        self.pairs = max(1.0, self.n * (self.n - 1) / 2)  # one person: nothing to even out
        load_sum = np.zeros(self.n)
        self.count: dict[tuple[int, int], int] = {}
        # Planned duties by holder and load: swaps are sought between load classes.
        self.classes: list[dict[float, list[int]]] = [{} for _ in range(self.n)]
        for duty, person in enumerate(self.h):
            if person >= 0:
                load_sum[person] += problem.loads[duty]
                key = (person, problem.months[person][duty])
                self.count[key] = self.count.get(key, 0) + 1
                if problem.planned[duty]:
                    bisect.insort(self.classes[person].setdefault(problem.loads[duty], []), duty)
        self.x = load_sum / self.w if self.n else load_sum
        self.repeats = [
            k
            for k in range(1, self.d)
            if self.h[k] >= 0
            and self.h[k] == self.h[k - 1]
            and (problem.planned[k] or problem.planned[k - 1])
        ]
        self._refresh()

    # -- the objective -------------------------------------------------------------------------

    def _refresh(self) -> None:
        # Sum over j of min(v, x_j) / max(v, x_j) is the sum of x_j / v over the x_j <= v plus
        # v times the sum of 1 / x_j over the others: prefix sums over the sorted loads give it
        # for many v at once in O(log n) each, instead of a matrix of ratios.
        ordered = np.sort(self.x)
        self._sorted = ordered
        self._below = np.concatenate(([0.0], np.cumsum(ordered)))
        inverse = np.divide(1.0, ordered, out=np.zeros_like(ordered), where=ordered > 0)
        self._above = np.concatenate((np.cumsum(inverse[::-1])[::-1], [0.0]))
        self._zeros = float(np.count_nonzero(ordered == 0))
        self.C = self._sum_ratios(self.x) - 1.0  # each person's sum over everyone else
        self._class_arrays: tuple[np.ndarray, np.ndarray] | None = None
        # Gains depend on the holder and the load only, not on which duty: many duties share them.
        self._cache: dict[tuple[str, int, float], tuple[np.ndarray, ...]] = {}

    def _sum_ratios(self, values: np.ndarray) -> np.ndarray:
        """For each v in `values`: the sum over everyone j of min(v, x_j) / max(v, x_j)."""
        at = np.searchsorted(self._sorted, values, side="right")
        positive = values > 0
        safe = np.where(positive, values, 1.0)
        return np.where(positive, self._below[at] / safe + values * self._above[at], self._zeros)

    def score(self) -> float:
        if self.n < 2:
            return 1.0
        return float(self.C.sum() / 2 / self.pairs)

    def changes(self) -> int:
        return sum(
            1
            for duty in range(self.d)
            if self.p.planned[duty] and self.p.incumbent[duty] >= 0 and self.h[duty] != self.p.incumbent[duty]
        )

    def value(self) -> tuple[int, float]:
        assigned = sum(1 for person in self.h if person != NOBODY)
        return assigned, self.score() - self.penalty * self.changes()

    def _others(self, values: np.ndarray, selves: np.ndarray | int) -> np.ndarray:
        """For each value v_k held by person selves_k: the sum of ratios to everyone else's load."""
        return self._sum_ratios(values) - _ratio(values, self.x[selves])

    def _gains(self, a: int, bs: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Balance gain of moving `shift` weighted hours from person `a` to each of `bs`."""
        if a < 0:  # filling an unassigned duty: only the taker's load changes
            vb = self.x[bs] + shift / self.w[bs]
            return (self._others(vb, bs) - self.C[bs]) / self.pairs
        va = np.maximum(self.x[a] - shift / self.w[a], 0.0)
        vb = self.x[bs] + shift / self.w[bs]
        gain = self._others(va, a) - self.C[a] + self._others(vb, bs) - self.C[bs]
        # The pair (a, b) was counted from both sides with one old value each.
        xa = np.full(len(vb), self.x[a])
        gain += _ratio(xa, self.x[bs]) - _ratio(va, self.x[bs]) - _ratio(vb, xa) + _ratio(va, vb)
        # Only transfers from heavier to lighter that leave them no further apart: the score
        # counts two people at 0 as even, so it can rise by piling duties on a few while others
        # hold none; such a move would never be one a manager calls evening out.
        # An exchange of duties of different loads can carry load either way: the giver is `a`
        # when `shift` is positive and the one in `bs` when it is negative.
        forward = (vb <= self.x[a] + _SLACK) & (va >= self.x[bs] - _SLACK)
        backward = (va <= self.x[bs] + _SLACK) & (vb >= self.x[a] - _SLACK)
        evening = np.where(np.asarray(shift) >= 0, forward, backward)
        return np.where(evening, gain / self.pairs, -np.inf)

    def _changed(self, duty: int, person: int) -> int:
        incumbent = self.p.incumbent[duty]
        return 1 if incumbent >= 0 and person != incumbent else 0

    # -- the hard rules ------------------------------------------------------------------------

    def can_take(self, person: int, duty: int, vacating: int = -1) -> bool:
        """May `person` take `duty` (giving up `vacating`, if any) without breaking time off, rest or cap?"""
        p = self.p
        if p.away[person][duty]:
            return False
        if p.rest_windows is not None:
            lo, hi = p.rest_windows[duty]
            h = self.h
            for other in range(lo, hi):
                if other != duty and other != vacating and h[other] == person:
                    return False
        if p.max_per_month is not None:
            month = p.months[person][duty]
            held = self.count.get((person, month), 0)
            if vacating >= 0 and p.months[person][vacating] == month:
                held -= 1
            if held >= p.max_per_month:
                return False
        return True

    def _repeats(self, duty: int, person: int) -> bool:
        return (duty > 0 and self.h[duty - 1] == person) or (duty + 1 < self.d and self.h[duty + 1] == person)

    def _repeats_still_forced(self) -> bool:
        """Every repeat the start plan had is still one nobody else was free for."""
        h, p = self.h, self.p
        for k in self.repeats:
            if h[k] < 0 or h[k] != h[k - 1]:
                continue  # no longer a repeat
            decided = k if p.planned[k] else k - 1
            around = {
                h[decided - 1] if decided > 0 else NOBODY,
                h[decided + 1] if decided + 1 < self.d else NOBODY,
            }
            for other in range(self.n):
                if other != h[k] and other not in around and self.can_take(other, decided):
                    return False
        return True

    # -- moves ---------------------------------------------------------------------------------

    def _move(self, duty: int, to: int) -> None:
        """Give `duty` to `to` (the caller refreshes the score)."""
        p = self.p
        load = p.loads[duty]
        frm = self.h[duty]
        if frm >= 0:
            self.x[frm] -= load / self.w[frm]
            self.count[(frm, p.months[frm][duty])] -= 1
            self.classes[frm][load].remove(duty)
            if not self.classes[frm][load]:
                del self.classes[frm][load]
        self.x[to] += load / self.w[to]
        key = (to, p.months[to][duty])
        self.count[key] = self.count.get(key, 0) + 1
        bisect.insort(self.classes[to].setdefault(load, []), duty)
        self.h[duty] = to

    def _undo(self, duty: int, back: int) -> None:
        """Undo `_move`: `back` is the holder before it (NOBODY included)."""
        p = self.p
        load = p.loads[duty]
        now = self.h[duty]
        self.x[now] -= load / self.w[now]
        self.count[(now, p.months[now][duty])] -= 1
        self.classes[now][load].remove(duty)
        if not self.classes[now][load]:
            del self.classes[now][load]
        self.h[duty] = NOBODY
        if back >= 0:
            self._move(duty, back)

    def _reassign(self, duty: int) -> bool:
        """Give `duty` to whoever raises the objective most, if anyone does; True if moved."""
        a = self.h[duty]
        if self.n == 0 or a == OUTSIDER:
            return False
        everyone = np.arange(self.n)
        load = self.p.loads[duty]
        key = ("reassign", a, load)
        if key not in self._cache:
            self._cache[key] = (self._gains(a, everyone, np.full(self.n, load)),)
        gains = self._cache[key][0].copy()
        incumbent = self.p.incumbent[duty]
        if incumbent >= 0 and a >= 0:
            changed = (everyone != incumbent).astype(float) - self._changed(duty, a)
            gains -= self.penalty * changed
        if a >= 0:
            gains[a] = -np.inf
            candidates = np.flatnonzero(gains > _EPS)
        else:
            candidates = everyone  # filling a duty beats any score
        for b in sorted(candidates.tolist(), key=lambda b: (-gains[b], b)):
            if self._repeats(duty, b) or not self.can_take(b, duty):
                continue
            self._move(duty, b)
            if self.repeats and not self._repeats_still_forced():
                self._undo(duty, a)
                continue
            self._refresh()
            return True
        return False

    def _class_lists(self) -> tuple[np.ndarray, np.ndarray]:
        if self._class_arrays is None:
            people = [b for b in range(self.n) for _ in self.classes[b]]
            loads = [load for b in range(self.n) for load in self.classes[b]]
            self._class_arrays = (np.array(people, dtype=int), np.array(loads, dtype=float))
        return self._class_arrays

    def _swap(self, d1: int) -> bool:
        """Swap `d1` with another person's duty of another load, if that raises the objective."""
        a = self.h[d1]
        if a < 0:
            return False
        load = self.p.loads[d1]
        key = ("swap", a, load)
        if key not in self._cache:
            people, loads = self._class_lists()
            mask = (people != a) & (loads != load)
            bs, l2s = people[mask], loads[mask]
            gains = self._gains(a, bs, load - l2s) if mask.any() else np.zeros(0)
            order = sorted(
                np.flatnonzero(gains > _EPS).tolist(), key=lambda k: (-gains[k], int(bs[k]), l2s[k])
            )
            self._cache[key] = (bs, l2s, gains, np.array(order, dtype=int))
        bs, l2s, gains, order = self._cache[key]
        for k in order.tolist():
            b = int(bs[k])
            for d2 in list(self.classes[b][float(l2s[k])]):
                changed = (
                    self._changed(d1, b) - self._changed(d1, a) + self._changed(d2, a) - self._changed(d2, b)
                )
                if gains[k] - self.penalty * changed <= _EPS:
                    continue
                if not (self.can_take(b, d1, vacating=d2) and self.can_take(a, d2, vacating=d1)):
                    continue
                self.h[d1], self.h[d2] = b, a
                repeat = self._repeats(d1, b) or self._repeats(d2, a)
                self.h[d1], self.h[d2] = a, b
                if repeat:
                    continue
                self._move(d1, b)
                self._move(d2, a)
                if self.repeats and not self._repeats_still_forced():
                    self._undo(d2, b)
                    self._undo(d1, a)
                    continue
                self._refresh()
                return True
        return False

    def descend(self, max_passes: int, max_moves: int) -> None:
        planned = [duty for duty in range(self.d) if self.p.planned[duty]]
        moves = 0
        for _ in range(max_passes):
            improved = False
            for duty in planned:
                if moves >= max_moves:
                    return
                if self._reassign(duty):
                    moves += 1
                    improved = True
                if moves < max_moves and self._swap(duty):
                    moves += 1
                    improved = True
            if not improved:
                return

    def shake(self, rnd: random.Random, moves: int) -> None:
        """Random moves that keep the hard rules, whatever they do to the score."""
        planned = [duty for duty in range(self.d) if self.p.planned[duty] and self.h[duty] >= 0]
        if not planned or self.n < 2:
            return
        for _ in range(moves * 20):
            if moves == 0:
                break
            duty = rnd.choice(planned)
            a = self.h[duty]
            b = rnd.randrange(self.n)
            if b == a or self._repeats(duty, b) or not self.can_take(b, duty):
                continue
            self._move(duty, b)
            if self.repeats and not self._repeats_still_forced():
                self._undo(duty, a)
                continue
            moves -= 1
        self._refresh()

"""One figure for how evenly the load is spread: Grafana OnCall's balance score.

For every pair of people, the lighter normalised load divided by the heavier
one; the score is the mean over all pairs. 1.0 is perfectly even; a pair where
one carried everything and the other nothing scores 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations


def balance_score(loads: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
    """Mean over all pairs of min(load_i/w_i, load_j/w_j) / max(…).

    People missing from `weights` count as weight 1. A pair where both carried
    nothing is even (1.0), and so is a roster of one or none.
    """
    normalised = [loads[person] / _weight(person, weights) for person in sorted(loads)]
    pairs = list(combinations(normalised, 2))
    if not pairs:
        return 1.0
    return sum(_pair_ratio(a, b) for a, b in pairs) / len(pairs)


def _pair_ratio(a: float, b: float) -> float:
    if a < 0 or b < 0:
        raise ValueError("loads cannot be negative")
    high = max(a, b)
    return 1.0 if high == 0 else min(a, b) / high


def _weight(person: str, weights: Mapping[str, float] | None) -> float:
    weight = 1.0 if weights is None else weights.get(person, 1.0)
    if not weight > 0:
        raise ValueError(f"{person}'s weight must be above 0, got {weight}")
    return weight

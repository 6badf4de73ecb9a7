"""How heavy a duty is: hours on call, weighted by the kind of after-hours.

A weekend hour costs more of someone's life than a weeknight hour, and a public
holiday more still; the weights say how much more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.business_hours import AfterHours, AfterHoursKind, BusinessCalendar
from rota.duties import Duty

_KINDS: tuple[AfterHoursKind, ...] = ("weeknight", "weekend", "holiday")


@dataclass(frozen=True)
class LoadWeights:
    """Load per after-hours hour, by kind."""

    weeknight: float = 1.0
    weekend: float = 1.5
    holiday: float = 2.0

    def __post_init__(self) -> None:
        for kind in _KINDS:
            value = getattr(self, kind)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"the {kind} weight must be a number of at least 0, got {value}")

    def of(self, kind: AfterHoursKind) -> float:
        return float(getattr(self, kind))


DEFAULT_WEIGHTS = LoadWeights()


def parse_load_weights(spec: str) -> LoadWeights:
    """Read `"weeknight=1, weekend=1.5, holiday=2"`; kinds left out keep their default."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, equals, number = (s.strip() for s in part.partition("="))
        if not equals:
            raise ValueError(f"{part!r} should be kind=number, like weekend=1.5")
        if name not in _KINDS:
            raise ValueError(f"{name!r} is not a kind of after-hours; use {', '.join(_KINDS)}")
        if name in values:
            raise ValueError(f"{name} is given twice")
        try:
            values[name] = float(number)
        except ValueError:
            raise ValueError(f"{number!r} is not a number (in {part!r})") from None
    return LoadWeights(**values)


def duty_load(intervals: Iterable[AfterHours], weights: LoadWeights = DEFAULT_WEIGHTS) -> float:
    """Hours on duty, each weighted by its kind."""
    return sum(interval.duration.total_seconds() / 3600 * weights.of(interval.kind) for interval in intervals)


def load_of_duty(duty: Duty, calendar: BusinessCalendar, weights: LoadWeights = DEFAULT_WEIGHTS) -> float:
    return duty_load(calendar.after_hours(duty.start, duty.end), weights)


def loads_by_person(
    duties: Iterable[Duty],
    calendar: BusinessCalendar,
    weights: LoadWeights = DEFAULT_WEIGHTS,
    *,
    people: Iterable[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, float]:
    """Load each person carried in [start, end) (all time when open-ended).

    Everyone in `people` appears, with 0 if they held nothing: a teammate who
    never takes a duty is the unfairness the balance score must see.
    """
    loads = dict.fromkeys(people, 0.0)
    for duty in duties:
        if duty.person is None:
            continue
        clipped_start = duty.start if start is None else max(duty.start, start)
        clipped_end = duty.end if end is None else min(duty.end, end)
        if clipped_start < clipped_end:
            load = duty_load(calendar.after_hours(clipped_start, clipped_end), weights)
            loads[duty.person] = loads.get(duty.person, 0.0) + load
    return loads

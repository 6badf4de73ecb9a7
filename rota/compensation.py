"""The compensation ledger's arithmetic: what holding the phone earns, and what is still owed.

A held duty earns either days off in lieu or pay, per the team's policy. The
ledger is a list of entries (earned, taken, adjusted) and a balance is their
sum; amounts are Decimal, so money and days add up exactly.

Pay follows either one rate per hour by kind of after-hours (`PayPerWeightedHour`,
COMP_PAY_RATES) or an ordered list of rules (`PayRules`, COMP_PAY_RULES): one-off
dates first, then weekly rules, the first match paying each minute.

Amounts are worked out exactly and then rounded to the policy's quantum (0.01 by
default) cumulatively per person: each entry is the change in the person's
rounded running total. Seven nights at 1/7 day each then make exactly 1.00 day,
not 0.98 or 1.01, and adding a later duty never changes an earlier entry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from bot.business_hours import BusinessCalendar
from rota.duties import Duty
from rota.load import DEFAULT_WEIGHTS, LoadWeights
from rota.pay_rules import LedgerUnit, PayRules, check_positive
from rota.roster import as_utc

EntryKind = Literal["earned", "taken", "adjusted"]

_MICROSECOND = timedelta(microseconds=1)
_HOUR = timedelta(hours=1) // _MICROSECOND
_WEEK = timedelta(weeks=1) // _MICROSECOND


@dataclass(frozen=True)
class DaysInLieu:
    """`days_per_week` days off for a full week held, pro rata for less (a night is a seventh).

    Time is measured on the local wall clock, so a week that contains a DST change
    (167 or 169 real hours) still earns exactly one week's worth.
    """

    days_per_week: Decimal = Decimal(1)
    quantum: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        check_positive(self.days_per_week, "days per week")
        check_positive(self.quantum, "rounding quantum")

    @property
    def unit(self) -> LedgerUnit:
        return "days"


@dataclass(frozen=True)
class PayPerWeightedHour:
    """`rate` (money) per after-hours hour on duty, each hour weighted by its kind."""

    rate: Decimal
    weights: LoadWeights = DEFAULT_WEIGHTS
    quantum: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        check_positive(self.rate, "pay rate")
        check_positive(self.quantum, "rounding quantum")

    @property
    def unit(self) -> LedgerUnit:
        return "money"


CompensationPolicy = DaysInLieu | PayPerWeightedHour | PayRules


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the ledger. Earned and taken amounts are positive; an adjustment carries its sign."""

    person: str
    kind: EntryKind
    amount: Decimal
    unit: LedgerUnit
    at: datetime
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise ValueError(f"a ledger amount must be a finite Decimal, got {self.amount!r}")
        if self.kind in ("earned", "taken") and self.amount < 0:
            raise ValueError(f"an {self.kind} amount cannot be negative, got {self.amount}")
        if self.kind == "adjusted" and not self.note.strip():
            raise ValueError("an adjustment needs a reason")
        object.__setattr__(self, "at", as_utc(self.at))

    @property
    def signed_amount(self) -> Decimal:
        return -self.amount if self.kind == "taken" else self.amount


def earned_entries(
    duties: Iterable[Duty],
    policy: CompensationPolicy,
    calendar: BusinessCalendar,
    *,
    until: datetime | None = None,
) -> list[LedgerEntry]:
    """What each held duty earns, one entry per duty, in time order.

    Only time before `until` counts (a duty under way earns what has been held so
    far). Time a person held twice, through overlapping duties, counts once.
    """
    until = None if until is None else as_utc(until)
    by_person: dict[str, list[Duty]] = defaultdict(list)
    for duty in duties:
        if duty.person is not None:
            by_person[duty.person].append(duty)

    entries: list[LedgerEntry] = []
    for person, held in sorted(by_person.items()):
        covered_until: datetime | None = None
        exact_total = Fraction(0)
        quanta_so_far = 0
        for duty in sorted(held, key=lambda d: (d.start, d.end)):
            start = duty.start if covered_until is None else max(duty.start, covered_until)
            end = duty.end if until is None else min(duty.end, until)
            covered_until = duty.end if covered_until is None else max(covered_until, duty.end)
            if start >= end:
                continue
            exact_total += _exact_earning(start, end, policy, calendar)
            quanta = round(exact_total / Fraction(policy.quantum))  # exact; halves go to even
            amount = (Decimal(quanta - quanta_so_far) * policy.quantum).quantize(policy.quantum)
            quanta_so_far = quanta
            local_start, local_end = start.astimezone(calendar.tz), end.astimezone(calendar.tz)
            note = f"held {local_start:%Y-%m-%d %H:%M} to {local_end:%Y-%m-%d %H:%M} ({calendar.tz.key})"
            entries.append(LedgerEntry(person, "earned", amount, policy.unit, end, note))
    entries.sort(key=lambda e: (e.at, e.person))
    return entries


def taken_entry(
    person: str, amount: Decimal, at: datetime, *, unit: LedgerUnit = "days", note: str = ""
) -> LedgerEntry:
    """Days off taken (`/oncall comp take 2026-12-27`) or compensation paid out."""
    return LedgerEntry(person, "taken", amount, unit, at, note)


def adjustment_entry(
    person: str, amount: Decimal, at: datetime, reason: str, *, unit: LedgerUnit = "days"
) -> LedgerEntry:
    """A manager's correction, positive or negative; the reason is kept with it."""
    return LedgerEntry(person, "adjusted", amount, unit, at, reason)


def balance(entries: Iterable[LedgerEntry]) -> dict[str, Decimal]:
    """Per person: earned plus adjustments minus taken."""
    totals: dict[str, Decimal] = {}
    units: dict[str, LedgerUnit] = {}
    for entry in entries:
        if units.setdefault(entry.person, entry.unit) != entry.unit:
            raise ValueError(f"{entry.person}'s ledger mixes days and money; balance them separately")
        totals[entry.person] = totals.get(entry.person, Decimal(0)) + entry.signed_amount
    return totals


def _exact_earning(
    start: datetime, end: datetime, policy: CompensationPolicy, calendar: BusinessCalendar
) -> Fraction:
    if isinstance(policy, DaysInLieu):
        wall_clock = _naive_local(end, calendar) - _naive_local(start, calendar)
        return Fraction(wall_clock // _MICROSECOND, _WEEK) * Fraction(policy.days_per_week)
    if isinstance(policy, PayRules):
        return policy.exact_pay(start, end, calendar)
    weighted_hours = sum(
        (
            Fraction(stretch.duration // _MICROSECOND, _HOUR)
            * Fraction(repr(policy.weights.of(stretch.kind)))
            for stretch in calendar.after_hours(start, end)
        ),
        Fraction(0),
    )
    return weighted_hours * Fraction(policy.rate)


def _naive_local(moment: datetime, calendar: BusinessCalendar) -> datetime:
    return moment.astimezone(calendar.tz).replace(tzinfo=None)


def _exact(weight: float) -> Fraction:
    # Through repr, 1.1 is 11/10 as written in the settings, not the nearest binary fraction.
    return Fraction(repr(weight))


def page_work_earning(
    start: datetime,
    end: datetime,
    policy: CompensationPolicy,
    calendar: BusinessCalendar,
    *,
    workday_hours: Decimal = Decimal(8),
) -> Decimal:
    """What night work on a page earns, from the page to the ticket's resolution.

    Only after-hours time counts (during opening hours it is ordinary work). Pay
    policies pay the weighted hours at their rate, or each minute at its rule's;
    days in lieu give the hours back, a working day for every `workday_hours`.
    """
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        return Decimal(0).quantize(policy.quantum)
    stretches = calendar.after_hours(start, end)
    if isinstance(policy, DaysInLieu):
        hours = sum((Fraction(s.duration // _MICROSECOND, _HOUR) for s in stretches), Fraction(0))
        exact = hours / Fraction(workday_hours)
    elif isinstance(policy, PayRules):
        exact = policy.exact_pay(start, end, calendar)
    else:
        exact = sum(
            (
                Fraction(s.duration // _MICROSECOND, _HOUR) * _exact(policy.weights.of(s.kind))
                for s in stretches
            ),
            Fraction(0),
        ) * Fraction(policy.rate)
    quanta = round(exact / Fraction(policy.quantum))
    return (Decimal(quanta) * policy.quantum).quantize(policy.quantum)

"""Load weights, the balance score, and the compensation ledger's sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.business_hours import AfterHours, BusinessCalendar
from rota.compensation import (
    DaysInLieu,
    LedgerEntry,
    PayPerWeightedHour,
    adjustment_entry,
    balance,
    earned_entries,
    taken_entry,
)
from rota.duties import Duty, duty_slots
from rota.fairness import balance_score
from rota.load import LoadWeights, duty_load, loads_by_person, parse_load_weights

ROME = ZoneInfo("Europe/Rome")
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- load ------------------------------------------------------------------------------------------


def test_duty_load_weighs_hours_by_kind() -> None:
    stretches = [
        AfterHours(utc(2026, 1, 1), utc(2026, 1, 1, 2), "weeknight"),
        AfterHours(utc(2026, 1, 2), utc(2026, 1, 2, 4), "weekend"),
        AfterHours(utc(2026, 1, 3), utc(2026, 1, 3, 1, 30), "holiday"),
    ]
    assert duty_load(stretches) == 2 * 1.0 + 4 * 1.5 + 1.5 * 2.0
    assert duty_load(stretches, LoadWeights(weeknight=1, weekend=2, holiday=3)) == 2 + 8 + 4.5
    assert duty_load([]) == 0


def test_parse_load_weights() -> None:
    assert parse_load_weights("weekend=2, holiday=3.5") == LoadWeights(1.0, 2.0, 3.5)
    assert parse_load_weights("") == LoadWeights()
    for spec, message in [
        ("weekend", "kind=number"),
        ("night=2", "'night' is not a kind"),
        ("weekend=lots", "'lots' is not a number"),
        ("weekend=1, weekend=2", "weekend is given twice"),
        ("holiday=-1", "holiday weight must be"),
        ("holiday=nan", "holiday weight must be"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_load_weights(spec)


def test_loads_by_person_clips_to_the_period_and_lists_everyone() -> None:
    christmas_week = Duty(utc(2026, 12, 21, 8), utc(2026, 12, 28, 8), "UA")
    loads = loads_by_person(
        [christmas_week, Duty(utc(2026, 12, 28, 8), utc(2027, 1, 4, 8))],
        CALENDAR,
        people=["UA", "UB"],
        start=utc(2026, 12, 24, 23),  # Christmas Day, 00:00 in Rome
        end=utc(2026, 12, 26, 23),
    )
    assert loads == {"UA": 48 * 2.0, "UB": 0.0}


# -- balance score ---------------------------------------------------------------------------------


def test_balance_score_known_values() -> None:
    assert balance_score({}) == 1.0
    assert balance_score({"UA": 10.0}) == 1.0
    assert balance_score({"UA": 0.0, "UB": 0.0}) == 1.0
    assert balance_score({"UA": 10.0, "UB": 10.0}) == 1.0
    assert balance_score({"UA": 10.0, "UB": 5.0}) == 0.5
    assert balance_score({"UA": 10.0, "UB": 5.0, "UC": 0.0}) == pytest.approx((0.5 + 0 + 0) / 3)
    # A part-timer who carried half carried their share.
    assert balance_score({"UA": 10.0, "UB": 5.0}, {"UB": 0.5}) == 1.0
    with pytest.raises(ValueError, match="negative"):
        balance_score({"UA": -1.0, "UB": 1.0})
    with pytest.raises(ValueError, match="weight"):
        balance_score({"UA": 1.0, "UB": 1.0}, {"UA": 0.0})


loads_maps = st.dictionaries(
    st.sampled_from(["U1", "U2", "U3", "U4", "U5"]), st.floats(min_value=0, max_value=1e6), max_size=5
)


@settings(max_examples=150, deadline=None)
@given(loads_maps, st.floats(min_value=0.01, max_value=100))
def test_property_balance_score_is_a_ratio_unchanged_by_scale(loads: dict[str, float], factor: float) -> None:
    score = balance_score(loads)
    assert 0.0 <= score <= 1.0
    if all(v > 1e-300 for v in loads.values()):
        assert balance_score({k: v * factor for k, v in loads.items()}) == pytest.approx(score)
    if len(set(loads.values())) <= 1:
        assert score == 1.0


# -- compensation ----------------------------------------------------------------------------------


def total(entries: list[LedgerEntry], person: str) -> Decimal:
    return balance(entries).get(person, Decimal(0))


def test_a_week_across_dst_earns_exactly_one_day() -> None:
    dst_week = Duty(utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), "UA")  # 167 real hours, 7 days on the wall
    [entry] = earned_entries([dst_week], DaysInLieu(), CALENDAR)
    assert (entry.person, entry.kind, entry.amount, entry.unit) == ("UA", "earned", Decimal("1.00"), "days")
    assert entry.at == dst_week.end
    assert entry.note == "held 2026-03-23 09:00 to 2026-03-30 09:00 (Europe/Rome)"


def test_seven_nights_make_exactly_one_day() -> None:
    nights = [
        Duty(d.start, d.end, "UA")
        for d in duty_slots(CALENDAR, utc(2026, 1, 12, 8), utc(2026, 1, 19, 8), "night")
    ]
    entries = earned_entries(nights, DaysInLieu(), CALENDAR)
    # Each is the change in the rounded running total: 0.14, 0.29, 0.43, 0.57, 0.71, 0.86, 1.00.
    assert [e.amount for e in entries] == [
        Decimal(x) for x in ("0.14", "0.15", "0.14", "0.14", "0.14", "0.15", "0.14")
    ]
    assert total(entries, "UA") == Decimal("1.00")


def test_days_pro_rata_and_configurable() -> None:
    half_week = Duty(utc(2026, 1, 12, 8), utc(2026, 1, 15, 20), "UA")  # 3.5 days
    assert total(earned_entries([half_week], DaysInLieu(Decimal("1.5")), CALENDAR), "UA") == Decimal("0.75")


def test_a_duty_under_way_earns_what_was_held() -> None:
    week = Duty(utc(2026, 1, 12, 8), utc(2026, 1, 19, 8), "UA")
    entries = earned_entries([week], DaysInLieu(Decimal(7)), CALENDAR, until=utc(2026, 1, 14, 8))
    assert [e.amount for e in entries] == [Decimal("2.00")]
    assert earned_entries([week], DaysInLieu(), CALENDAR, until=utc(2026, 1, 1)) == []


def test_overlapping_duties_count_once() -> None:
    first = Duty(utc(2026, 1, 12, 8), utc(2026, 1, 19, 8), "UA")
    overlap = Duty(utc(2026, 1, 17, 8), utc(2026, 1, 21, 8), "UA")  # two days of it already held
    other = Duty(utc(2026, 1, 17, 8), utc(2026, 1, 21, 8), "UB")
    entries = earned_entries([overlap, first, other], DaysInLieu(Decimal(7)), CALENDAR)
    assert balance(entries) == {"UA": Decimal("9.00"), "UB": Decimal("4.00")}


def test_pay_per_weighted_hour() -> None:
    policy = PayPerWeightedHour(Decimal("20"))
    christmas_eve = Duty(utc(2026, 12, 24, 8), utc(2026, 12, 25, 8), "UA")  # 6 weeknight h + 9 holiday h
    ordinary_week = Duty(utc(2026, 1, 12, 8), utc(2026, 1, 19, 8), "UB")  # 75 weeknight h + 48 weekend h
    entries = earned_entries([christmas_eve, ordinary_week], policy, CALENDAR)
    assert balance(entries) == {"UA": Decimal("480.00"), "UB": Decimal("2940.00")}
    assert {e.unit for e in entries} == {"money"}
    # Rates in tenths stay exact: 1.1 is eleven tenths, not the nearest binary fraction.
    odd = PayPerWeightedHour(Decimal("0.10"), LoadWeights(weeknight=1.1), quantum=Decimal("0.0001"))
    assert total(earned_entries([christmas_eve], odd, CALENDAR), "UA") == Decimal(
        "2.4600"
    )  # (6×1.1 + 9×2) × 0.10


def test_balance_is_earned_plus_adjusted_minus_taken() -> None:
    week = Duty(utc(2026, 1, 12, 8), utc(2026, 1, 19, 8), "UA")
    entries = [
        *earned_entries([week], DaysInLieu(), CALENDAR),
        taken_entry("UA", Decimal("0.5"), utc(2026, 1, 27)),
        adjustment_entry("UA", Decimal("-0.25"), utc(2026, 1, 28), "half a day already given in December"),
        adjustment_entry("UB", Decimal("2"), utc(2026, 1, 28), "carried over from the spreadsheet"),
    ]
    assert balance(entries) == {"UA": Decimal("0.25"), "UB": Decimal("2")}


def test_ledger_entries_are_checked() -> None:
    with pytest.raises(ValueError, match="reason"):
        adjustment_entry("UA", Decimal(1), utc(2026, 1, 1), "  ")
    with pytest.raises(ValueError, match="negative"):
        taken_entry("UA", Decimal(-1), utc(2026, 1, 1))
    with pytest.raises(ValueError, match="Decimal"):
        taken_entry("UA", 1.5, utc(2026, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        taken_entry("UA", Decimal(1), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="mixes"):
        balance(
            [
                taken_entry("UA", Decimal(1), utc(2026, 1, 1)),
                taken_entry("UA", Decimal(1), utc(2026, 1, 2), unit="money"),
            ]
        )
    with pytest.raises(ValueError, match="positive"):
        DaysInLieu(Decimal(0))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=7 * 24 * 60 - 1), unique=True, max_size=30))
def test_property_a_week_cut_anywhere_still_earns_exactly_one_day(cuts_in_minutes: list[int]) -> None:
    start = utc(2026, 3, 23, 8)  # the DST week: 167 real hours, seven days on the wall
    end = utc(2026, 3, 30, 7)
    moments = [
        start,
        *sorted(start + timedelta(minutes=m) for m in cuts_in_minutes if start + timedelta(minutes=m) < end),
        end,
    ]
    pieces = [Duty(a, b, "UA") for a, b in pairwise(moments) if a < b]
    entries = earned_entries(pieces, DaysInLieu(), CALENDAR)
    assert total(entries, "UA") == Decimal("1.00")
    assert all(e.amount >= 0 for e in entries)

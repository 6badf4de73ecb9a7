"""Pay windows are wall-clock minutes, on the nights clocks change too (COMP_PAY_RULES).

A window names minutes on the wall clock: where clocks fall back, the minutes that
show twice are paid twice; where they spring forward, the minutes that never show are
paid nothing. Every figure is worked out by hand for Europe/Rome (changes at 02:00 and
03:00) and America/Santiago (changes at midnight), with windows that start and end
inside the repeated and the skipped hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.business_hours import BusinessCalendar
from bot.wall_clock import wall_clock_stretches
from rota.compensation import earned_entries
from rota.duties import Duty
from rota.pay_rules import parse_pay_rules
from tests.support.pay_reference import pay_by_the_minute

ROME = ZoneInfo("Europe/Rome")
SANTIAGO = ZoneInfo("America/Santiago")
# No public holidays: Holy Saturday, a Chilean holiday, falls on Santiago's April change.
ROME_CAL = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME)
SANTIAGO_CAL = BusinessCalendar.from_spec("mon-fri 09:00-18:00", SANTIAGO)


def at(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)


def pay(rules: str, start: datetime, end: datetime, calendar: BusinessCalendar) -> Decimal:
    entries = earned_entries([Duty(start, end, "UA")], parse_pay_rules(rules), calendar)
    return sum((e.amount for e in entries), Decimal(0))


# Rome falls back on Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET, so the clock
# reads 02:00-02:59 twice. Saturday 18:00 CEST to Sunday 10:00 CET is 17 real hours.
ROME_FALL = (at(ROME, 2026, 10, 24, 18), at(ROME, 2026, 10, 25, 10))
# Rome springs forward on Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST, so 02:00-02:59
# never shows. Saturday 22:00 CET to Sunday 06:00 CEST is 7 real hours.
ROME_SPRING = (at(ROME, 2026, 3, 28, 22), at(ROME, 2026, 3, 29, 6))
# Santiago falls back at midnight on Saturday 4 April 2026: 24:00 (-03) becomes 23:00 (-04),
# so Saturday 23:00-23:59 shows twice. Saturday 20:00 to Sunday 02:00 is 7 real hours.
SANTIAGO_FALL = (at(SANTIAGO, 2026, 4, 4, 20), at(SANTIAGO, 2026, 4, 5, 2))
# Santiago springs forward at midnight on Sunday 6 September 2026: 00:00 (-04) becomes 01:00
# (-03), so Sunday 00:00-00:59 never shows. Saturday 20:00 to Sunday 04:00 is 7 real hours.
SANTIAGO_SPRING = (at(SANTIAGO, 2026, 9, 5, 20), at(SANTIAGO, 2026, 9, 6, 4))


def test_the_four_nights_last_as_long_as_the_comments_say() -> None:
    for (start, end), hours in ((ROME_FALL, 17), (ROME_SPRING, 7), (SANTIAGO_FALL, 7), (SANTIAGO_SPRING, 7)):
        assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # Ends inside the repeated hour: 22:00-02:30 CEST is 4.5 h, then 02:00-02:30 CET again.
        ("sat 22:00-02:30 = 10; * = 1", "62.00"),  # 5 h × 10 + 12 h × 1
        # Starts inside it: 02:30-03:00 CEST, then 02:30-06:00 CET.
        ("sun 02:30-06:00 = 10; * = 1", "53.00"),  # 4 h × 10 + 13 h × 1
        # The two meet without a gap or an overlap.
        ("sat 22:00-02:30 = 10; sun 02:30-06:00 = 20; * = 1", "138.00"),  # 50 + 80 + 8
        # Starts and ends inside it: half an hour, twice.
        ("sun 02:15-02:45 = 60; * = 0", "60.00"),
    ],
)
def test_rome_fall_back(rules: str, expected: str) -> None:
    assert pay(rules, *ROME_FALL, ROME_CAL) == Decimal(expected)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("sat 22:00-02:30 = 10; * = 1", "43.00"),  # 22:00-02:00 CET: 4 h × 10 + 3 h × 1
        ("sun 02:30-06:00 = 10; * = 1", "34.00"),  # 03:00-06:00 CEST: 3 h × 10 + 4 h × 1
        ("sun 02:15-02:45 = 60; * = 1", "7.00"),  # never on the clock
    ],
)
def test_rome_spring_forward(rules: str, expected: str) -> None:
    assert pay(rules, *ROME_SPRING, ROME_CAL) == Decimal(expected)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("sat 22:00-23:30 = 10; * = 1", "25.00"),  # 22:00-23:30 (-03), 23:00-23:30 (-04): 2 h
        ("sat 23:30-24:00 = 10; * = 1", "16.00"),  # half an hour, twice
        ("sat 23:00-24:00 = 10; * = 1", "25.00"),  # the whole repeated hour, twice
        ("sun 00:00-01:00 = 10; * = 1", "16.00"),  # Sunday begins once, after the repeat
    ],
)
def test_santiago_fall_back_at_midnight(rules: str, expected: str) -> None:
    assert pay(rules, *SANTIAGO_FALL, SANTIAGO_CAL) == Decimal(expected)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("sat 22:00-00:30 = 10; * = 1", "25.00"),  # 22:00-24:00 (-04) only: 2 h
        ("sun 00:30-02:00 = 10; * = 1", "16.00"),  # 01:00-02:00 (-03) only: 1 h
        ("sun = 2; * = 1", "10.00"),  # Sunday is 01:00-04:00 here: 3 h × 2 + 4 h × 1
    ],
)
def test_santiago_spring_forward_at_midnight(rules: str, expected: str) -> None:
    assert pay(rules, *SANTIAGO_SPRING, SANTIAGO_CAL) == Decimal(expected)


def test_a_repeated_reading_gives_two_stretches_and_a_skipped_one_none() -> None:
    # 02:15-02:45 on Rome's fall-back night: 00:15-00:45 and 01:15-01:45 UTC.
    assert wall_clock_stretches(datetime(2026, 10, 25, 2, 15), datetime(2026, 10, 25, 2, 45), ROME) == [
        (datetime(2026, 10, 25, 0, 15, tzinfo=UTC), datetime(2026, 10, 25, 0, 45, tzinfo=UTC)),
        (datetime(2026, 10, 25, 1, 15, tzinfo=UTC), datetime(2026, 10, 25, 1, 45, tzinfo=UTC)),
    ]
    assert wall_clock_stretches(datetime(2026, 3, 29, 2, 15), datetime(2026, 3, 29, 2, 45), ROME) == []
    # Across the repeat the stretches join into one: 01:00 CEST to 03:00 CET is three real hours.
    assert wall_clock_stretches(datetime(2026, 10, 25, 1), datetime(2026, 10, 25, 3), ROME) == [
        (datetime(2026, 10, 24, 23, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC))
    ]


# -- against a minute-by-minute reading of the wall clock, over the changes --------------------------

_MIXED = parse_pay_rules(
    "sat 22:30-02:15 = 9; sun 02:45-23:20 = 7; sat 23:10-00:40 = 5; weekend = 3;"
    " mon-fri 23:30-02:30 = 2; * = 1"
)


_CHANGES = [date(2026, 3, 29), date(2026, 10, 25), date(2026, 4, 5), date(2026, 9, 6)]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(["rome", "santiago"]),
    change=st.sampled_from(_CHANGES),
    hours_before=st.integers(min_value=0, max_value=30),
    minute=st.integers(min_value=0, max_value=59),
    minutes=st.integers(min_value=1, max_value=36 * 60),
)
@example(zone="rome", change=date(2026, 10, 25), hours_before=4, minute=0, minutes=8 * 60)
@example(zone="santiago", change=date(2026, 4, 5), hours_before=6, minute=0, minutes=8 * 60)
def test_the_rules_pay_what_the_wall_clock_reads_minute_by_minute(
    zone: str, change: date, hours_before: int, minute: int, minutes: int
) -> None:
    calendar = ROME_CAL if zone == "rome" else SANTIAGO_CAL
    start = datetime(change.year, change.month, change.day, tzinfo=UTC) - timedelta(
        hours=hours_before, minutes=minute
    )
    expected = pay_by_the_minute(_MIXED, start, minutes, calendar)
    assert _MIXED.exact_pay(start, start + timedelta(minutes=minutes), calendar) == expected

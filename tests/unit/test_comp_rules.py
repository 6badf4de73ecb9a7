"""Pay by ordered rules (COMP_PAY_RULES): one-off dates first, then weekly rules, first match wins.

Every amount here is worked out by hand from local times in Europe/Rome, with
opening hours mon-fri 09:00-18:00 and Italian public holidays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.business_hours import BusinessCalendar, parse_business_hours
from bot.config import ConfigError, load_settings
from rota.compensation import LedgerEntry, earned_entries, page_work_earning
from rota.duties import Duty
from rota.pay_rules import PayRules, parse_pay_rules
from tests.support.pay_reference import pay_by_the_minute

ROME = ZoneInfo("Europe/Rome")
# Christmas Eve is no Italian public holiday; the company gives it as a day off.
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT", days_off=[date(2026, 12, 24)])
WEEKDAYS = parse_business_hours("mon-fri 09:00-18:00")


def rome(*args: int) -> datetime:
    return datetime(*args, tzinfo=ROME)


def pay(rules: str, start: datetime, end: datetime, calendar: BusinessCalendar = CALENDAR) -> Decimal:
    """What one duty earns under `rules`, rounded to the cent."""
    entries = earned_entries([Duty(start, end, "UA")], parse_pay_rules(rules), calendar)
    return total(entries)


def total(entries: list[LedgerEntry], person: str = "UA") -> Decimal:
    return sum((e.amount for e in entries if e.person == person), Decimal(0))


# -- hand-computed examples ------------------------------------------------------------------------


def test_a_one_off_date_beats_holiday_even_when_written_after_it() -> None:
    # Thursday 24 December 09:00 to Friday 25 09:00: both are holidays, so all 24 h are after hours.
    # 24th 09:00-24:00 is 15 h at the Christmas Eve rate 40; the 25th 00:00-09:00 is 9 h of holiday at 20.
    rules = "holiday = 20; * = 10; 2026-12-24 = 40"
    assert parse_pay_rules(rules).in_order[0].text == "2026-12-24 = 40"
    assert pay(rules, rome(2026, 12, 24, 9), rome(2026, 12, 25, 9)) == Decimal("780.00")  # 600 + 180
    # A date range takes each of its days; the 26th (Santo Stefano) is a holiday too.
    ranged = "holiday = 20; 2026-12-25..2026-12-26 = 50; * = 10"
    assert pay(ranged, rome(2026, 12, 24, 9), rome(2026, 12, 27, 0)) == Decimal("2700.00")  # 15×20 + 48×50


def test_a_weekend_night_splits_at_midnight_between_friday_and_saturday() -> None:
    # Friday 16 January 2026 18:00 to Saturday 08:00: 6 h of Friday weeknight, 8 h of Saturday.
    start, end = rome(2026, 1, 16, 18), rome(2026, 1, 17, 8)
    assert pay("sat,sun = 15; weeknight = 10", start, end) == Decimal("180.00")  # 6×10 + 8×15
    assert pay("fri = 12; sat = 15; * = 10", start, end) == Decimal("192.00")  # 6×12 + 8×15
    # `weekend` is what BUSINESS_HOURS leaves closed, so it is Saturday here too.
    assert pay("weekend = 15; weeknight = 10", start, end) == Decimal("180.00")


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    # Friday 22:00-06:00 runs into Saturday morning; Saturday's own window would start at 22:00.
    start, end = rome(2026, 1, 16, 18), rome(2026, 1, 17, 8)
    rules = "fri 22:00-06:00 = 20; * = 10"
    assert pay(rules, start, end) == Decimal("220.00")  # 4×10 + 8×20 (22-06) + 2×10 (06-08)


def test_a_night_window_across_the_october_fall_back_counts_the_real_hours() -> None:
    # Rome falls back on Sunday 25 October 2026 at 03:00 CEST → 02:00 CET. Saturday 22:00 to
    # Sunday 06:00 on the wall clock is nine real hours; the duty, 18:00 to 10:00, is 17.
    rules = "sat 22:00-06:00 = 10; * = 1"
    start, end = rome(2026, 10, 24, 18), rome(2026, 10, 25, 10)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=17)
    assert pay(rules, start, end) == Decimal("98.00")  # 9×10 + 8×1
    # A week later the same wall-clock window is eight hours.
    assert pay(rules, rome(2026, 10, 31, 18), rome(2026, 11, 1, 10)) == Decimal(
        "88.00"
    )  # 8×10 + 8×1, of 16 h


def test_windows_across_the_march_spring_forward_follow_the_wall_clock() -> None:
    # Rome springs forward on Sunday 29 March 2026 at 02:00 CET → 03:00 CEST.
    night = "sat 22:00-06:00 = 10; * = 1"
    assert pay(night, rome(2026, 3, 28, 22), rome(2026, 3, 29, 6)) == Decimal("70.00")  # 7 real hours
    # 02:30 never shows on the clock that night: a window edge there is the jump itself,
    # so the two windows still meet and no time falls to `*`. Sunday is 23 h long:
    # 00:00-02:00 CET is 2 h at 5, the other 21 h at 7.
    edges = "sun 00:00-03:00 = 5; sun 02:30-24:00 = 7; * = 1"
    assert pay(edges, rome(2026, 3, 29, 0), rome(2026, 3, 30, 0)) == Decimal("157.00")


def test_the_first_matching_weekly_rule_wins() -> None:
    # Wednesday 14 January 18:00 to Thursday 09:00: 15 h of weeknight, 8 of them 22:00-06:00.
    start, end = rome(2026, 1, 14, 18), rome(2026, 1, 15, 9)
    assert pay("mon-fri 22:00-06:00 = 12; weeknight = 10", start, end) == Decimal("166.00")  # 7×10 + 8×12
    assert pay("weeknight = 10; mon-fri 22:00-06:00 = 12", start, end) == Decimal("150.00")  # 15×10


def test_business_hours_earn_nothing() -> None:
    # Monday 08:00 to 19:00: 09:00-18:00 is the working day; 1 h before and 1 h after are paid.
    assert pay("* = 10", rome(2026, 1, 12, 8), rome(2026, 1, 12, 19)) == Decimal("20.00")


def test_overlapping_duties_are_paid_once() -> None:
    rules = parse_pay_rules("sat,sun = 15; * = 10")
    friday_night = Duty(rome(2026, 1, 16, 18), rome(2026, 1, 17, 8), "UA")  # 6×10 + 8×15 = 180
    overlap = Duty(rome(2026, 1, 17, 0), rome(2026, 1, 17, 12), "UA")  # only 08:00-12:00 is new: 4×15
    someone_else = Duty(rome(2026, 1, 17, 0), rome(2026, 1, 17, 12), "UB")  # 12×15
    entries = earned_entries([overlap, friday_night, someone_else], rules, CALENDAR)
    assert [(e.person, e.amount) for e in entries] == [
        ("UA", Decimal("180.00")),
        ("UA", Decimal("60.00")),
        ("UB", Decimal("180.00")),
    ]
    assert {e.unit for e in entries} == {"money"}


def test_rounding_to_the_cent_is_cumulative() -> None:
    # Three 20-minute duties at 0.10 an hour earn 0.0333… each: 0.03, then 0.07 - 0.03, then 0.10 - 0.07.
    rules = parse_pay_rules("* = 0.10")
    evening = rome(2026, 1, 12, 20)
    duties = [
        Duty(evening + timedelta(minutes=20 * n), evening + timedelta(minutes=20 * n + 20), "UA")
        for n in range(3)
    ]
    entries = earned_entries(duties, rules, CALENDAR)
    assert [e.amount for e in entries] == [Decimal("0.03"), Decimal("0.04"), Decimal("0.03")]
    assert total(entries) == Decimal("0.10")


def test_night_work_on_a_page_is_paid_by_the_rules_too() -> None:
    rules = parse_pay_rules("2026-12-24 = 40; holiday = 20; * = 10")
    # Paged on Christmas Eve at 23:30, resolved at 00:45 on Christmas Day: 30 min at 40, 45 at 20.
    assert page_work_earning(rome(2026, 12, 24, 23, 30), rome(2026, 12, 25, 0, 45), rules, CALENDAR) == (
        Decimal("35.00")
    )


# -- properties ------------------------------------------------------------------------------------

_MOMENTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
)


@settings(max_examples=60, deadline=None)
@given(
    start=_MOMENTS,
    minutes=st.integers(min_value=1, max_value=14 * 24 * 60),
    rate=st.decimals(min_value=0, max_value=1000, places=2),
)
def test_one_catch_all_rule_pays_its_rate_for_every_after_hours_hour(
    start: datetime, minutes: int, rate: Decimal
) -> None:
    end = start + timedelta(minutes=minutes)
    hours = sum(
        (Fraction(int(s.duration.total_seconds()), 3600) for s in CALENDAR.after_hours(start, end)),
        Fraction(0),
    )
    rules = parse_pay_rules(f"* = {rate}")
    assert rules.exact_pay(start, end, CALENDAR) == hours * Fraction(rate)
    entries = earned_entries([Duty(start, end, "UA")], rules, CALENDAR)
    assert total(entries) == Decimal(round(hours * Fraction(rate) * 100)) / 100


_MIXED = parse_pay_rules(
    "2026-12-24..2026-12-26 = 40; holiday = 30; sat 22:00-06:00 = 25; sat,sun = 20;"
    " mon-fri 22:00-06:00 = 15; * = 10"
)


@settings(max_examples=60, deadline=None)
@given(
    start=_MOMENTS,
    minutes=st.integers(min_value=2, max_value=14 * 24 * 60),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=4),
)
def test_splitting_a_duty_anywhere_keeps_the_persons_total(
    start: datetime, minutes: int, cuts: list[float]
) -> None:
    end = start + timedelta(minutes=minutes)
    points = sorted({start + timedelta(minutes=round(c * minutes)) for c in cuts} | {start, end})
    pieces = [Duty(a, b, "UA") for a, b in pairwise(points) if a < b]
    whole = total(earned_entries([Duty(start, end, "UA")], _MIXED, CALENDAR))
    assert total(earned_entries(pieces, _MIXED, CALENDAR)) == whole


@settings(max_examples=40, deadline=None)
@given(
    # Away from DST changes, where a wall-clock reading of minutes is ambiguous.
    start=st.datetimes(min_value=datetime(2026, 11, 2), max_value=datetime(2027, 3, 20)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
    ),
    minutes=st.integers(min_value=1, max_value=3 * 24 * 60),
)
def test_the_rules_pay_what_a_minute_by_minute_reading_pays(start: datetime, minutes: int) -> None:
    expected = pay_by_the_minute(_MIXED, start, minutes, CALENDAR)
    assert _MIXED.exact_pay(start, start + timedelta(minutes=minutes), CALENDAR) == expected


def test_rules_cover_every_kind_of_day_so_every_minute_is_paid_by_someone() -> None:
    assert _MIXED.unpaid_after_hours(WEEKDAYS, holidays=True) is None


# -- the spec --------------------------------------------------------------------------------------


def test_a_spec_reads_forgivingly() -> None:
    rules = parse_pay_rules(" 2026-12-24 .. 2026-12-26, 2026-12-31 = 40 ;Mon - Fri 22:00-24:00 = 12; * = 0 ;")
    one_off, night, rest = rules.rules
    assert one_off.dates == (
        (date(2026, 12, 24), date(2026, 12, 26)),
        (date(2026, 12, 31), date(2026, 12, 31)),
    )
    assert night.weekdays == frozenset(range(5)) and night.window == (22 * 60, 24 * 60)
    assert rest.rate == Decimal(0) and isinstance(rules, PayRules) and rules.unit == "money"
    assert parse_pay_rules("fri-mon = 1; * = 2").rules[0].weekdays == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("", "empty"),
        ("sat 15", "'sat 15'"),
        ("= 15", "'= 15'"),
        ("sat = fifteen", "'fifteen'"),
        ("sat = -1", "'-1'"),
        ("sat = NaN", "'NaN'"),
        ("sot = 15", "'sot'"),
        ("2026-02-30 = 15", "'2026-02-30'"),
        ("20261224 = 15", "'20261224'"),
        ("2026-12-26..2026-12-24 = 15", "'2026-12-26..2026-12-24'"),
        ("sat 22:00 = 15", "'22:00'"),
        ("sat 22:00-25:00 = 15", "'25:00'"),
        ("sat 24:00-06:00 = 15", "'24:00-06:00'"),
        ("sat 06:00-06:00 = 15", "'06:00-06:00'"),
        ("sat 22:00-06:00 extra = 15", "'sat 22:00-06:00 extra'"),
        ("* = 10; sat = 15", "'sat = 15'"),
    ],
)
def test_a_bad_spec_names_the_offending_part(spec: str, named: str) -> None:
    with pytest.raises(ValueError, match=r"never match|is empty|should be|is not|ends|cannot start") as info:
        parse_pay_rules(spec)
    assert named in str(info.value)


def test_unpaid_after_hours_time_is_found_and_described() -> None:
    # The night window ends at 06:00 on Saturday, but nothing pays Monday's early hours.
    gappy = parse_pay_rules("sat,sun = 15; mon-fri 18:00-09:00 = 10")
    assert gappy.unpaid_after_hours(WEEKDAYS, holidays=False) == "mon 00:00-09:00 (weeknight)"
    # Nights that start on a weeknight leave the morning after a holiday to no rule.
    nights = parse_pay_rules("holiday = 20; sat,sun = 15; sun 18:00-09:00 = 10; weeknight 18:00-09:00 = 10")
    assert nights.unpaid_after_hours(WEEKDAYS, holidays=False) is None
    assert (
        nights.unpaid_after_hours(WEEKDAYS, holidays=True)
        == "tue 00:00-09:00 (weeknight, the day after a holiday)"
    )
    # Dates are one-offs: the weekly rules must pay without them.
    assert parse_pay_rules("2026-12-24 = 40").unpaid_after_hours(WEEKDAYS, holidays=False) == (
        "mon 00:00-09:00 (weeknight)"
    )


# -- configuration ---------------------------------------------------------------------------------

BASE = {
    "SLACK_BOT_TOKEN": "xoxb-1-secret-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "SUPPORT_CHANNEL": "C0SUPPORT",
    "IMAP_HOST": "imap.example.com",
    "IMAP_USER": "help@example.com",
    "IMAP_PASSWORD": "imap-password-value",
    "SMTP_HOST": "smtp.example.com",
    "SUPPORT_ADDRESS": "help@example.com",
    "TIMEZONE": "Europe/Rome",
    "HOLIDAYS_COUNTRY": "IT",
}


def test_comp_pay_rules_replace_the_rates() -> None:
    spec = "2026-12-24 = 40; holiday = 20; sat,sun = 15; * = 10"
    settings_ = load_settings(
        {**BASE, "COMP_POLICY": "pay", "COMP_PAY_RATES": "weeknight=1", "COMP_PAY_RULES": spec}
    )
    assert settings_.compensation() == parse_pay_rules(spec)
    # Without COMP_PAY_RATES, the rules alone are enough.
    assert (
        load_settings({**BASE, "COMP_POLICY": "pay", "COMP_PAY_RULES": spec}).compensation().unit == "money"
    )


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"COMP_PAY_RULES": "sat = lots; * = 1"}, "'lots'"),
        ({"COMP_PAY_RULES": "sat,sun = 15; weeknight 18:00-24:00 = 10"}, "mon 00:00-09:00 (weeknight)"),
        ({"COMP_PAY_RULES": "weeknight = 10; weekend = 15"}, "(holiday"),  # HOLIDAYS_COUNTRY is set
        ({"COMP_POLICY": "days"}, "COMP_POLICY=pay"),
    ],
)
def test_a_bad_comp_pay_rules_setting_is_named(change: dict[str, str], mentions: str) -> None:
    env = {**BASE, "COMP_POLICY": "pay", "COMP_PAY_RULES": "* = 10", **change}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value).startswith("COMP_PAY_RULES")
    assert mentions in str(info.value)


def test_without_holidays_the_kinds_alone_can_cover_the_week() -> None:
    env = {**BASE, "COMP_POLICY": "pay", "COMP_PAY_RULES": "weeknight = 10; weekend = 15"}
    del env["HOLIDAYS_COUNTRY"]
    assert load_settings(env).comp_pay_rules == "weeknight = 10; weekend = 15"


@pytest.mark.parametrize(
    ("rates", "missing"),
    [("weeknight=10, weekend=15", "holiday"), ("weekend=15", "weeknight or holiday")],
)
def test_pay_rates_must_name_every_kind(rates: str, missing: str) -> None:
    # A kind left out used to be paid its load weight (holiday 2.0) as if that were money.
    env = {**BASE, "COMP_POLICY": "pay", "COMP_PAY_RATES": rates}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value).startswith(f"COMP_PAY_RATES gives no rate for {missing}: name every kind")
    full = {**env, "COMP_PAY_RATES": "weeknight=10, weekend=15, holiday=20"}
    assert load_settings(full).compensation().unit == "money"

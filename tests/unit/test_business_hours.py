"""The working calendar: the hours parser, holidays, DST, and after-hours by kind."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.business_hours import (
    DAY_NAMES,
    AfterHours,
    BusinessCalendar,
    format_business_hours,
    parse_business_hours,
)

ROME = ZoneInfo("Europe/Rome")
OFFICE = "mon-fri 09:00-18:00"
# Built once: the holidays package is not free to load, and hypothesis runs many examples.
CALENDAR = BusinessCalendar.from_spec(OFFICE, ROME, "IT")
H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def nine_to_six() -> tuple[time, time]:
    return time(9), time(18)


# -- parsing ---------------------------------------------------------------------------------------


def test_weekdays_range() -> None:
    hours = parse_business_hours("mon-fri 09:00-18:00")
    assert hours == {
        0: nine_to_six(),
        1: nine_to_six(),
        2: nine_to_six(),
        3: nine_to_six(),
        4: nine_to_six(),
        5: None,
        6: None,
    }


def test_several_clauses_and_day_lists() -> None:
    assert parse_business_hours("mon-fri 09:00-18:00; sat 10:00-13:00")[5] == (time(10), time(13))
    hours = parse_business_hours("mon,wed 08:30-17:00")
    assert hours[0] == hours[2] == (time(8, 30), time(17))
    assert hours[1] is hours[3] is hours[4] is hours[5] is hours[6] is None


def test_day_ranges_wrap_round_the_week() -> None:
    hours = parse_business_hours("sun-thu 09:00-17:00")
    assert [day for day, opening in hours.items() if opening] == [0, 1, 2, 3, 6]
    assert format_business_hours(hours) == "mon-thu,sun 09:00-17:00"


def test_lenient_spacing_case_and_full_names() -> None:
    assert parse_business_hours(" Mon - FRI  9:00 - 18:00 ;") == parse_business_hours(OFFICE)
    assert parse_business_hours("monday,friday 09:00-18:00") == parse_business_hours("mon,fri 09:00-18:00")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "is empty"),
        (" ; ", "is empty"),
        ("mon-fri", "should be days then hours"),
        ("mon-fri 09:00-18:00 extra", "should be days then hours"),
        ("mox 09:00-18:00", "'mox' is not a day"),
        ("mon-fri 9-18", "'9' is not a time of day"),
        ("mon-fri 24:00-25:00", "'24:00' is not a time of day"),
        ("mon-fri 09:60-18:00", "'09:60' is not a time of day"),
        ("mon-fri 09:00", "should be opening-closing"),
        ("mon-fri 09:00-12:00-13:00", "should be opening-closing"),
        ("mon-fri 18:00-09:00", "closes at or before it opens"),
        ("mon-fri 09:00-09:00", "closes at or before it opens"),
        ("mon-fri 09:00-18:00; fri 10:00-12:00", "fri is given twice"),
        ("mon,mon 09:00-18:00", "mon is given twice"),
        ("mon-fri ٠٩:٠٠-18:00", "is not a time of day"),
    ],
)
def test_malformed_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_business_hours(spec)


def test_format_is_canonical() -> None:
    assert format_business_hours(parse_business_hours("tue,mon,wed,thu,fri 09:00-18:00")) == OFFICE
    assert format_business_hours(parse_business_hours("mon,wed 08:30-17:00")) == "mon,wed 08:30-17:00"
    spec = "sat 10:00-13:00; mon-fri 09:00-18:00; sun 11:00-12:00"
    assert (
        format_business_hours(parse_business_hours(spec))
        == "mon-fri 09:00-18:00; sat 10:00-13:00; sun 11:00-12:00"
    )


minute_of_day = st.integers(min_value=0, max_value=24 * 60 - 1)


@st.composite
def weekly_hours(draw: st.DrawFn) -> dict[int, tuple[time, time] | None]:
    hours: dict[int, tuple[time, time] | None] = {}
    for day in range(7):
        if draw(st.booleans()):
            opens, closes = sorted(draw(st.lists(minute_of_day, min_size=2, max_size=2, unique=True)))
            hours[day] = (time(opens // 60, opens % 60), time(closes // 60, closes % 60))
        else:
            hours[day] = None
    return hours


@settings(max_examples=200, deadline=None)
@given(weekly_hours())
def test_format_then_parse_round_trips(hours: dict[int, tuple[time, time] | None]) -> None:
    if all(v is None for v in hours.values()):
        with pytest.raises(ValueError, match="is empty"):
            parse_business_hours(format_business_hours(hours))
    else:
        assert parse_business_hours(format_business_hours(hours)) == hours


spec_pieces = st.sampled_from(
    [*DAY_NAMES, "monday", "-", ",", ";", " ", ":", "09", "9", "18", "00", "30", "24", "x"]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(spec_pieces, max_size=14).map("".join)))
def test_parser_either_parses_or_raises_value_error(spec: str) -> None:
    try:
        hours = parse_business_hours(spec)
    except ValueError as error:
        assert str(error)
        return
    assert set(hours) == set(range(7))
    for opening in hours.values():
        assert opening is None or opening[0] < opening[1]
    assert parse_business_hours(format_business_hours(hours)) == hours


# -- holidays and opening --------------------------------------------------------------------------


def test_italian_public_holidays_and_company_days() -> None:
    calendar = BusinessCalendar.from_spec(OFFICE, ROME, "it", days_off={date(2026, 8, 14)})
    assert calendar.is_holiday(date(2026, 12, 25))
    assert calendar.is_holiday(date(2026, 12, 26))
    assert calendar.is_holiday(date(2026, 4, 6))  # Easter Monday
    assert calendar.is_holiday(date(2026, 8, 14))  # company day
    assert not calendar.is_holiday(date(2026, 12, 24))
    assert not BusinessCalendar.from_spec(OFFICE, ROME).is_holiday(date(2026, 12, 25))


def test_unknown_country_and_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="not a country"):
        BusinessCalendar.from_spec(OFFICE, ROME, "XX")
    with pytest.raises(ValueError, match="aware datetime"):
        CALENDAR.is_open(datetime(2026, 3, 2, 10))


def test_is_open_follows_local_time_across_dst() -> None:
    # Rome is UTC+1 until 29 March 2026, then UTC+2.
    assert not CALENDAR.is_open(utc(2026, 3, 27, 7, 59))  # 08:59 CET
    assert CALENDAR.is_open(utc(2026, 3, 27, 8, 0))
    assert CALENDAR.is_open(utc(2026, 3, 27, 16, 59))
    assert not CALENDAR.is_open(utc(2026, 3, 27, 17, 0))  # 18:00 CET
    assert CALENDAR.is_open(utc(2026, 3, 30, 7, 0))  # 09:00 CEST
    assert not CALENDAR.is_open(utc(2026, 3, 28, 10))  # Saturday
    assert not CALENDAR.is_open(utc(2026, 12, 25, 10))  # Christmas, a Friday


def test_next_opening() -> None:
    assert CALENDAR.next_opening(utc(2026, 3, 27, 20)) == utc(2026, 3, 30, 7)  # over the DST weekend
    assert CALENDAR.next_opening(utc(2026, 12, 24, 18)) == utc(2026, 12, 28, 8)  # over Christmas
    assert CALENDAR.next_opening(utc(2026, 4, 5, 12)) == utc(2026, 4, 7, 7)  # Easter Monday is shut
    assert CALENDAR.next_opening(utc(2026, 3, 2, 10, 15)) == utc(2026, 3, 2, 10, 15)  # open now
    with pytest.raises(ValueError, match="never open"):
        BusinessCalendar({}, ROME).next_opening(utc(2026, 1, 1))


def test_business_seconds_between() -> None:
    # Friday 09:00 CET to Monday 18:00 CEST: nine hours each day.
    assert CALENDAR.business_seconds_between(utc(2026, 3, 27, 8), utc(2026, 3, 30, 16)) == 18 * 3600
    # Christmas and Saint Stephen's day add nothing.
    assert CALENDAR.business_seconds_between(utc(2026, 12, 24, 8), utc(2026, 12, 28, 17)) == 18 * 3600
    assert CALENDAR.business_seconds_between(utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30)) == 1800
    assert CALENDAR.business_seconds_between(utc(2026, 3, 2, 10), utc(2026, 3, 2, 9)) == 0


# -- after-hours -----------------------------------------------------------------------------------


def test_spring_forward_weekend_is_47_hours() -> None:
    stretches = CALENDAR.after_hours(utc(2026, 3, 27, 8), utc(2026, 3, 30, 7))
    assert stretches == [
        AfterHours(utc(2026, 3, 27, 17), utc(2026, 3, 27, 23), "weeknight"),  # Fri 18:00-24:00 CET
        AfterHours(utc(2026, 3, 27, 23), utc(2026, 3, 29, 22), "weekend"),  # Sat 00:00 CET - Mon 00:00 CEST
        AfterHours(utc(2026, 3, 29, 22), utc(2026, 3, 30, 7), "weeknight"),  # Mon 00:00-09:00 CEST
    ]
    assert stretches[1].duration == 47 * H


def test_fall_back_weekend_is_49_hours() -> None:
    stretches = CALENDAR.after_hours(utc(2026, 10, 23, 7), utc(2026, 10, 26, 8))
    assert stretches == [
        AfterHours(utc(2026, 10, 23, 16), utc(2026, 10, 23, 22), "weeknight"),  # Fri 18:00 CEST
        AfterHours(utc(2026, 10, 23, 22), utc(2026, 10, 25, 23), "weekend"),
        AfterHours(utc(2026, 10, 25, 23), utc(2026, 10, 26, 8), "weeknight"),  # Mon 09:00 CET
    ]
    assert stretches[1].duration == 49 * H


def test_christmas_is_holiday_then_weekend() -> None:
    stretches = CALENDAR.after_hours(utc(2026, 12, 24, 8), utc(2026, 12, 28, 8))
    assert stretches == [
        AfterHours(utc(2026, 12, 24, 17), utc(2026, 12, 24, 23), "weeknight"),
        AfterHours(utc(2026, 12, 24, 23), utc(2026, 12, 26, 23), "holiday"),  # Fri 25 and Sat 26
        AfterHours(utc(2026, 12, 26, 23), utc(2026, 12, 27, 23), "weekend"),
        AfterHours(utc(2026, 12, 27, 23), utc(2026, 12, 28, 8), "weeknight"),
    ]


def test_holiday_on_a_sunday_counts_as_holiday() -> None:
    # All Saints' Day 2026 is a Sunday.
    kinds = [(s.kind, s.duration) for s in CALENDAR.after_hours(utc(2026, 10, 30, 17), utc(2026, 11, 2, 8))]
    assert kinds == [("weeknight", 6 * H), ("weekend", 24 * H), ("holiday", 24 * H), ("weeknight", 9 * H)]


def test_a_day_with_short_hours_is_not_weekend() -> None:
    calendar = BusinessCalendar.from_spec("mon-fri 09:00-18:00; sat 10:00-13:00", ROME)
    # Saturday 7 March 2026, CET.
    assert calendar.after_hours(utc(2026, 3, 6, 17), utc(2026, 3, 9, 8)) == [
        AfterHours(utc(2026, 3, 6, 17), utc(2026, 3, 7, 9), "weeknight"),
        AfterHours(utc(2026, 3, 7, 12), utc(2026, 3, 7, 23), "weeknight"),
        AfterHours(utc(2026, 3, 7, 23), utc(2026, 3, 8, 23), "weekend"),
        AfterHours(utc(2026, 3, 8, 23), utc(2026, 3, 9, 8), "weeknight"),
    ]


def test_hours_inside_the_dst_gap() -> None:
    calendar = BusinessCalendar.from_spec("sun 02:30-03:15", ROME)
    assert calendar.open_interval(date(2026, 3, 22)) == (utc(2026, 3, 22, 1, 30), utc(2026, 3, 22, 2, 15))
    # Opening hours are the wall-clock minutes they name. On 29 March the clock jumps from
    # 02:00 to 03:00: 02:30-02:59 never shows, so the office is open 03:00-03:15 CEST only.
    assert calendar.open_stretches(date(2026, 3, 29)) == [(utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 15))]
    # On 25 October the clock reads 02:00-02:59 twice: open 02:30-02:59 CEST, closed while it
    # reads 02:00-02:29 again, open from 02:30 CET to 03:15 CET.
    assert calendar.open_stretches(date(2026, 10, 25)) == [
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0)),
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 15)),
    ]
    assert calendar.open_interval(date(2026, 10, 25)) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 15))
    assert not calendar.is_open(utc(2026, 10, 25, 1, 15))  # 02:15 CET, the second time round
    assert calendar.business_seconds_between(utc(2026, 10, 25), utc(2026, 10, 26)) == 75 * 60
    assert calendar.next_opening(utc(2026, 10, 25, 1, 5)) == utc(2026, 10, 25, 1, 30)
    # Every minute skipped: no opening at all.
    assert BusinessCalendar.from_spec("sun 02:10-02:50", ROME).open_interval(date(2026, 3, 29)) is None


def test_closing_inside_santiagos_repeated_hour_at_midnight() -> None:
    # Santiago falls back at midnight on Saturday 4 April 2026: the clock reads 23:00-23:59
    # twice (first at -03, then at -04). A shop open until 23:30 is open through the first
    # 23:00-23:29, closed at the first 23:30, and open again while the clock reads 23:00-23:29.
    santiago = ZoneInfo("America/Santiago")
    calendar = BusinessCalendar.from_spec("sat 20:00-23:30", santiago)
    saturday = date(2026, 4, 4)
    assert calendar.open_stretches(saturday) == [
        (utc(2026, 4, 4, 23, 0), utc(2026, 4, 5, 2, 30)),
        (utc(2026, 4, 5, 3, 0), utc(2026, 4, 5, 3, 30)),
    ]
    # After hours lie between and around the two (Saturday has opening hours here, so its
    # closed time is a weeknight's).
    assert calendar.after_hours(utc(2026, 4, 5, 2, 0), utc(2026, 4, 5, 4, 0)) == [
        AfterHours(utc(2026, 4, 5, 2, 30), utc(2026, 4, 5, 3, 0), "weeknight"),
        AfterHours(utc(2026, 4, 5, 3, 30), utc(2026, 4, 5, 4, 0), "weeknight"),
    ]
    # On 6 September the clock skips Sunday 00:00-00:59: Sunday starts at 01:00 (-03).
    sunday = BusinessCalendar.from_spec("sun 00:00-02:00", santiago)
    assert sunday.open_stretches(date(2026, 9, 6)) == [(utc(2026, 9, 6, 4, 0), utc(2026, 9, 6, 5, 0))]


def test_after_hours_is_clipped_to_the_range() -> None:
    assert CALENDAR.after_hours(utc(2026, 3, 28, 10), utc(2026, 3, 28, 11)) == [
        AfterHours(utc(2026, 3, 28, 10), utc(2026, 3, 28, 11), "weekend")
    ]
    assert CALENDAR.after_hours(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11)) == []
    assert CALENDAR.after_hours(utc(2026, 3, 2, 11), utc(2026, 3, 2, 10)) == []


CALENDARS = [
    CALENDAR,
    BusinessCalendar.from_spec("mon-fri 08:30-17:00; sat 10:00-13:00", ZoneInfo("America/New_York"), "US"),
    BusinessCalendar.from_spec("sun-thu 09:00-17:00", ZoneInfo("Asia/Kolkata")),
    # On the spring-forward Sunday 02:30 does not exist, so that day has no hours at all.
    BusinessCalendar.from_spec("mon-fri 09:00-18:00; sun 02:30-03:15", ROME),
]
moments = st.integers(min_value=0, max_value=2 * 365 * 24 * 60).map(
    lambda m: utc(2025, 6, 1) + timedelta(minutes=m)
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CALENDARS), moments, st.integers(min_value=0, max_value=20 * 24 * 60))
def test_after_hours_and_opening_hours_partition_time(
    calendar: BusinessCalendar, start: datetime, minutes: int
) -> None:
    end = start + timedelta(minutes=minutes)
    stretches = calendar.after_hours(start, end)
    closed = sum((s.duration for s in stretches), timedelta())
    assert (
        closed.total_seconds() + calendar.business_seconds_between(start, end)
        == (end - start).total_seconds()
    )
    edge = start
    for stretch in stretches:
        assert edge <= stretch.start < stretch.end <= end
        assert not calendar.is_open(stretch.start)
        assert not calendar.is_open(stretch.end - timedelta(microseconds=1))
        if stretch.start > edge:
            assert calendar.is_open(edge)  # the gap before a stretch is opening hours
        edge = stretch.end
    for before, after in pairwise(stretches):
        assert (
            before.end < after.start or before.kind != after.kind
        )  # touching stretches of one kind are joined


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CALENDARS), moments)
def test_next_opening_is_the_first_open_moment(calendar: BusinessCalendar, moment: datetime) -> None:
    opening = calendar.next_opening(moment)
    assert opening >= moment
    assert calendar.is_open(opening)
    assert calendar.business_seconds_between(moment, opening) == 0
    assert opening == moment or not calendar.is_open(opening - timedelta(microseconds=1))

"""The calendar reader against schedules made at random: a weekly rotation written as one
RRULE series per person (in a TZID zone, across DST changes), with EXDATEs and moved
occurrences, reads back as exactly the shifts it describes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from rota import feeds
from rota.ical_match import Directory, match_events
from rota.ical_read import read_calendar

PEOPLE = ["ada", "bob", "carl", "dee", "eve"]  # names of three letters or more match
ZONES = ["Europe/Rome", "America/New_York", "Australia/Sydney", "UTC"]


@st.composite
def schedules(draw: st.DrawFn) -> dict:
    people = draw(st.integers(1, len(PEOPLE)))
    weeks = draw(st.integers(1, 30))
    first = date(2026, 1, 5) + timedelta(weeks=draw(st.integers(0, 60)))  # a Monday
    hour = draw(st.integers(0, 23))
    zone = draw(st.sampled_from(ZONES))
    skipped = draw(st.sets(st.integers(0, weeks - 1), max_size=3))
    moved = draw(st.dictionaries(st.integers(0, weeks - 1), st.integers(1, 47), max_size=3))
    moved = {w: hours for w, hours in moved.items() if w not in skipped}
    return {
        "people": people,
        "weeks": weeks,
        "first": first,
        "hour": hour,
        "zone": zone,
        "skipped": skipped,
        "moved": moved,
    }


def ics(s: dict) -> tuple[bytes, list[tuple[datetime, datetime, str]]]:
    tz = ZoneInfo(s["zone"])
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    expected = []
    for p in range(s["people"]):
        mine = [w for w in range(s["weeks"]) if w % s["people"] == p]
        if not mine:
            continue
        begin = datetime.combine(s["first"] + timedelta(weeks=p), datetime.min.time(), tz).replace(
            hour=s["hour"]
        )
        fmt = lambda d: d.strftime("%Y%m%dT%H%M%S")  # noqa: E731
        lines += [
            "BEGIN:VEVENT",
            f"UID:series-{p}",
            f"DTSTART;TZID={s['zone']}:{fmt(begin)}",
            f"DTEND;TZID={s['zone']}:{fmt(begin + timedelta(weeks=1))}",
            f"RRULE:FREQ=WEEKLY;INTERVAL={s['people']};COUNT={len(mine)}",
            f"SUMMARY:On call - {PEOPLE[p]}",
        ]
        for w in mine:
            if w in s["skipped"]:
                at = datetime.combine(s["first"] + timedelta(weeks=w), datetime.min.time(), tz)
                lines.append(f"EXDATE;TZID={s['zone']}:{fmt(at.replace(hour=s['hour']))}")
        lines.append("END:VEVENT")
        for w in mine:
            local = datetime.combine(s["first"] + timedelta(weeks=w), datetime.min.time(), tz).replace(
                hour=s["hour"]
            )
            end = datetime.combine(s["first"] + timedelta(weeks=w + 1), datetime.min.time(), tz).replace(
                hour=s["hour"]
            )
            if w in s["skipped"]:
                continue
            if w in s["moved"]:
                shifted = local + timedelta(hours=s["moved"][w])
                lines += [
                    "BEGIN:VEVENT",
                    f"UID:series-{p}",
                    f"RECURRENCE-ID;TZID={s['zone']}:{fmt(local)}",
                    f"DTSTART;TZID={s['zone']}:{fmt(shifted)}",
                    f"DTEND;TZID={s['zone']}:{fmt(end)}",
                    f"SUMMARY:On call - {PEOPLE[p]}",
                    "END:VEVENT",
                ]
                local = shifted
            expected.append((local.astimezone(UTC), end.astimezone(UTC), PEOPLE[p]))
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines).encode() + b"\r\n", sorted(expected)


@settings(max_examples=60, deadline=None)
@given(schedules())
def test_random_rotations_read_back_as_their_shifts(schedule: dict) -> None:
    data, expected = ics(schedule)
    events = read_calendar(
        data, start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2029, 1, 1, tzinfo=UTC), tz=ZoneInfo("UTC")
    )
    matched = match_events(events, Directory({}, {name: name for name in PEOPLE}))
    assert matched.unmatched == ()
    assert sorted((p.start, p.end, p.user_id) for p in matched.placed) == expected
    # Each occurrence keeps one key, whichever way it was written.
    assert len({e.key for e in events}) == len(events)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=20),
    st.lists(st.integers(1, 14 * 24), min_size=20, max_size=20),
    st.integers(0, 500),
)
def test_our_own_feed_round_trips_to_the_same_duties(
    holders: list[str], hours: list[int], offset: int
) -> None:
    """A rota exported by our calendar feed (rota/feeds.py) and imported again is the same rota."""
    moment = datetime(2026, 1, 5, 8, tzinfo=UTC) + timedelta(days=offset)
    duties = []
    for n, person in enumerate(holders):
        end = moment + timedelta(hours=hours[n])
        duties.append(SimpleNamespace(id=n + 1, start=moment, end=end, user_id=person, published_at=moment))
        moment = end
    names = {p: f"{p.title()} Staff" for p in PEOPLE}
    data = feeds.duties_calendar(duties, title="Support", names=names, tz="Europe/Rome", now=duties[0].start)
    events = read_calendar(data, start=duties[0].start, end=moment, tz=ZoneInfo("UTC"))
    matched = match_events(events, Directory({}, names))
    assert [(p.start, p.end, p.user_id) for p in matched.placed] == [
        (d.start, d.end, d.user_id) for d in duties
    ]

"""Importing a rota from Opsgenie, PagerDuty and Grafana OnCall calendar exports into a
team that already has time off and a published plan: each export gives the same rota."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.business_hours import BusinessCalendar
from bot.storage.db import transaction
from rota import ical_import, ledger, store
from rota.compensation import DaysInLieu
from rota.ical_match import Directory, match_events
from rota.ical_read import CalendarUnreadable, read_calendar
from rota.load import LoadWeights
from rota.planner import PlanConfig
from rota.standing import fairness_report
from rota.store import StaffMember

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ical"
ROME = ZoneInfo("Europe/Rome")
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
WEEK = PlanConfig(unit="week")
KINDS = LoadWeights()
# Monday 30 November 2026, 08:00 in Rome: an hour before the week's hand-off.
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=ROME).astimezone(UTC)
TEAM = [
    StaffMember("UADA", "Ada Lovelace", "Europe/Rome"),
    StaffMember("UBOB", "Bob Byron", "Europe/London"),
    StaffMember("UCY", "Cy Young", "America/New_York"),
]
DIRECTORY = Directory(
    by_email={"ada@example.com": "UADA", "bob@example.com": "UBOB", "cy@example.com": "UCY"},
    names={m.user_id: m.name for m in TEAM},
)
# Weeks from Monday 19 October (before the clocks went back) to 4 January; Bob covers
# Cy's week of 14 December, as every export records in its own way.
ROTATION = ["UADA", "UBOB", "UCY", "UADA", "UBOB", "UCY", "UADA", "UBOB", "UBOB", "UADA", "UBOB", "UCY"]
FIRST_WEEK = datetime(2026, 10, 19, 9, 0, tzinfo=ROME)
EXPORTS = ["pagerduty.ics", "opsgenie.ics", "grafana_oncall.ics"]


def week(n: int) -> datetime:
    return (FIRST_WEEK + timedelta(weeks=n)).astimezone(UTC)


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """The team: a plan published a week ago, and Cy away the week of 14 December."""
    with transaction(session_factory) as session:
        store.sync_roster(session, TEAM, NOW - timedelta(days=60))
        store.add_time_off(
            session, "UCY", datetime(2026, 12, 14).date(), datetime(2026, 12, 18).date(), by="UCY", now=NOW
        )
        before = week(5)
        preview = store.preview_plan(session, CALENDAR, WEEK, now=before, until=before + timedelta(weeks=4))
        store.publish_plan(session, preview, by="UMGR", now=before)
    yield session_factory


def stage(db: sessionmaker[Session], name: str) -> tuple[int, tuple[str, ...]]:
    events = read_calendar(
        (FIXTURES / name).read_bytes(),
        start=NOW - timedelta(days=366),
        end=NOW + timedelta(weeks=104),
        tz=ROME,
    )
    matched = match_events(events, DIRECTORY)
    with transaction(db) as session:
        return ical_import.stage_import(session, matched, source=name, by="UMGR", now=NOW), matched.unmatched


@pytest.mark.parametrize("export", EXPORTS)
def test_each_tools_export_imports_as_the_same_rota(db: sessionmaker[Session], export: str) -> None:
    import_id, unmatched = stage(db, export)
    assert unmatched == (("Support_schedule - Zed Outsider (override)",) if export == "opsgenie.ics" else ())
    with transaction(db) as session:
        preview = ical_import.preview_import(session, import_id, CALENDAR, "week", now=NOW)
        # The preview changes nothing yet.
        assert store.duties_between(session, week(0), week(5)) == []
    assert [(c.start, c.after) for c in preview.history] == [(week(n), ROTATION[n]) for n in range(5)]
    # The plan published a week ago reaches week 8; the import changes some of it and adds the rest.
    starts = {c.start for c in preview.future}
    assert {week(9), week(10), week(11)} <= starts <= {week(n) for n in range(6, 12)}
    # Bob covering Cy's week is the one clash-free choice; nobody imported is away on duty.
    assert preview.clashes == ()

    with transaction(db) as session:
        ical_import.publish_import(
            session, import_id, CALENDAR, "week", KINDS, with_history=True, by="UMGR", now=NOW
        )
    with transaction(db) as session:
        duties = store.duties_between(session, week(0), week(12))
        by_start = {d.start: d for d in duties}
        for n in range(12):
            if n == 5:
                continue  # the duty under way (from the published plan) is never changed
            assert by_start[week(n)].user_id == ROTATION[n], n
        future = [d for d in duties if d.start >= NOW]
        assert future and all(d.pinned and d.origin == "import" for d in future)
        # Re-planning keeps every imported duty.
        again = store.preview_plan(session, CALENDAR, WEEK, now=NOW, until=week(12))
        assert not [c for c in again.changes if c.start < week(12)]
        # History counts for fairness, and the ledger settles it like any duty that ended.
        report = fairness_report(session, CALENDAR, KINDS, now=NOW, days=60)
        assert all(row.past > 0 for row in report.rows)
        settled = ledger.settle_duties(session, DaysInLieu(), CALENDAR, now=NOW)
        assert sorted(line.at for line in settled) == [week(n + 1) for n in range(5)]
        assert [line.user_id for line in sorted(settled, key=lambda x: x.at)] == ROTATION[:5]


def test_history_left_out_when_the_manager_says_so(db: sessionmaker[Session]) -> None:
    import_id, _ = stage(db, "pagerduty.ics")
    with transaction(db) as session:
        ical_import.publish_import(
            session, import_id, CALENDAR, "week", KINDS, with_history=False, by="UMGR", now=NOW
        )
        assert store.duties_between(session, week(0), week(5)) == []
        report = fairness_report(session, CALENDAR, KINDS, now=NOW, days=60)
        # Only the week under way (published before the import) has been held so far.
        assert sum(1 for row in report.rows if row.past > 0) <= 1
        assert [line.at for line in ledger.settle_duties(session, DaysInLieu(), CALENDAR, now=NOW)] == []
        with pytest.raises(ical_import.ImportDecided):
            ical_import.publish_import(
                session, import_id, CALENDAR, "week", KINDS, with_history=True, by="UMGR", now=NOW
            )


def test_a_clash_with_time_off_is_shown(db: sessionmaker[Session]) -> None:
    text = (FIXTURES / "pagerduty.ics").read_text().replace("On Call - Bob Byron", "On Call - Cy Young")
    text = text.replace("mailto:bob@example.com", "mailto:cy@example.com")
    events = read_calendar(text.encode(), start=NOW, end=NOW + timedelta(weeks=10), tz=ROME)
    with transaction(db) as session:
        import_id = ical_import.stage_import(
            session, match_events(events, DIRECTORY), source="x", by="M", now=NOW
        )
        preview = ical_import.preview_import(session, import_id, CALENDAR, "week", now=NOW)
    # Bob's weeks are Cy's now; Cy is away from Monday 14 December (New York), so the
    # week of 7 December ends inside the time off as well.
    assert [(c.duty.start, c.time_off.user_id) for c in preview.clashes] == [
        (week(7), "UCY"),
        (week(8), "UCY"),
    ]


def test_junk_is_refused_with_a_reason() -> None:
    for junk in (b"", b"hello", b"BEGIN:VCARD\r\nEND:VCARD\r\n", b"\xff\xfe" * 10):
        with pytest.raises(CalendarUnreadable):
            read_calendar(junk, start=NOW, end=NOW + timedelta(days=1), tz=ROME)

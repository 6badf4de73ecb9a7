"""Calendar feeds of the on-call rota: the iCalendar they hold, their secret URLs, and
the bot's HTTP server answering calendar apps."""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import OffsetClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import transaction
from bot.storage.models import CalendarFeed, RotaDuty, RotaMember
from rota.feeds import (
    FeedOwner,
    duties_calendar,
    feed_url,
    find_feed,
    member_feed_token,
    new_token,
    reset_member_token,
    reset_team_token,
    team_feed_token,
)
from tests.support.harness import bot_env, running_bot

ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
PUBLISHED = datetime(2026, 10, 1, 8, 30, tzinfo=UTC)
ADA, GRACE = "U0ADA", "U0GRACE"
NAMES = {ADA: "Ada Lovelace", GRACE: "Grace Hopper"}


def utc(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# Weekly duties handed off on Mondays at 09:00 in Rome. Summer time ends on Sunday
# 25 October 2026 (the last Sunday of October), so 09:00 is 07:00Z before and 08:00Z after.
OLD = (utc(2026, 6, 1, 7), utc(2026, 6, 8, 7), ADA)  # ended more than 90 days before NOW
ACROSS_DST = (utc(2026, 10, 19, 7), utc(2026, 10, 26, 8), ADA)
AFTER_DST = (utc(2026, 10, 26, 8), utc(2026, 11, 2, 8), GRACE)
UNASSIGNED = (utc(2026, 11, 2, 8), utc(2026, 11, 9, 8), None)
LATER = (utc(2026, 11, 9, 8), utc(2026, 11, 16, 8), ADA)
ROTA = (OLD, ACROSS_DST, AFTER_DST, UNASSIGNED, LATER)


@dataclass(frozen=True)
class PlainDuty:
    id: int
    start: datetime
    end: datetime
    user_id: str | None
    published_at: datetime = PUBLISHED


def events(data: bytes) -> list[dict[str, object]]:
    calendar = Calendar.from_ical(data)
    return [
        {
            "uid": str(e["uid"]),
            "summary": str(e["summary"]),
            "start": e.decoded("dtstart"),
            "end": e.decoded("dtend"),
            "modified": e.decoded("last-modified"),
        }
        for e in calendar.walk("VEVENT")
    ]


# -- the calendar itself -------------------------------------------------------------


def test_team_calendar_has_one_event_per_recent_duty_in_utc_across_the_dst_change():
    duties = [PlainDuty(n, *spec) for n, spec in enumerate(ROTA, start=1)]
    data = duties_calendar(
        reversed(duties), title="On-call rota", names=NAMES, tz=ROME, now=NOW, base_url="https://bot.example"
    )
    text = data.decode()

    # Hand-checked lines of the RFC 5545 text, folded and escaped as the RFC says.
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    for line in (
        "VERSION:2.0",
        "X-WR-CALNAME:On-call rota",
        "X-WR-TIMEZONE:Europe/Rome",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
        "UID:duty-2@bot.example",
        "SUMMARY:On call: Ada Lovelace",
        "DTSTART:20261019T070000Z",
        "DTEND:20261026T080000Z",
        "DTSTAMP:20261001T083000Z",
        "LAST-MODIFIED:20261001T083000Z",
        "TRANSP:TRANSPARENT",
        "DESCRIPTION:Mon 19 Oct 2026 09:00 – Mon 26 Oct 2026 09:00 (Europe/Rome)",
        "SUMMARY:On call: nobody (unassigned)",
        "DTSTART:20261102T080000Z",
    ):
        assert f"\r\n{line}\r\n" in text, line
    assert "20260601" not in text, "the June duty ended more than 90 days ago"

    got = events(data)
    assert [(e["uid"], e["summary"], e["start"], e["end"]) for e in got] == [
        ("duty-2@bot.example", "On call: Ada Lovelace", *ACROSS_DST[:2]),
        ("duty-3@bot.example", "On call: Grace Hopper", *AFTER_DST[:2]),
        ("duty-4@bot.example", "On call: nobody (unassigned)", *UNASSIGNED[:2]),
        ("duty-5@bot.example", "On call: Ada Lovelace", *LATER[:2]),
    ]
    # Every hand-off is at 09:00 on a Monday in Rome, summer time or not.
    for event in got:
        for moment in (event["start"], event["end"]):
            assert isinstance(moment, datetime)
            local = moment.astimezone(ROME)
            assert (local.strftime("%a"), local.hour, local.minute) == ("Mon", 9, 0)
    # Same rota, same bytes: the HTTP ETag stays put while nothing changes.
    again = duties_calendar(
        duties, title="On-call rota", names=NAMES, tz="Europe/Rome", now=NOW, base_url="https://bot.example"
    )
    assert again == data


def test_personal_calendar_holds_only_that_persons_duties():
    duties = [PlainDuty(n, *spec) for n, spec in enumerate(ROTA, start=1)]
    data = duties_calendar(duties, title="Mine", names=NAMES, tz=ROME, now=NOW, person=ADA)
    got = events(data)
    assert [(e["uid"], e["summary"], e["start"]) for e in got] == [
        ("duty-2-u0ada@supportbot", "On call (support)", ACROSS_DST[0]),
        ("duty-5-u0ada@supportbot", "On call (support)", LATER[0]),
    ]


def test_a_name_unknown_to_the_roster_falls_back_to_the_slack_id():
    data = duties_calendar([PlainDuty(1, *LATER[:2], "U0GONE")], title="t", names={}, tz=ROME, now=NOW)
    assert [e["summary"] for e in events(data)] == ["On call: U0GONE"]


# -- tokens --------------------------------------------------------------------------


def add_member(session: Session, user_id: str, name: str) -> RotaMember:
    member = RotaMember(
        user_id=user_id,
        name=name,
        tz="Europe/Rome",
        weight=1.0,
        active=True,
        ical_token=new_token(),
        joined_at=PUBLISHED,
        updated_at=PUBLISHED,
    )
    session.add(member)
    return member


def test_tokens_are_made_once_and_rotated_on_reset(session_factory: sessionmaker[Session]):
    with transaction(session_factory) as session:
        add_member(session, ADA, NAMES[ADA])
    with transaction(session_factory) as session:
        team = team_feed_token(session, NOW)
        assert team_feed_token(session, NOW) == team
        ada = member_feed_token(session, ADA)
        assert ada is not None and len(team) >= 43 and len(ada) >= 43
        assert member_feed_token(session, "U0NOBODY") is None
        assert reset_member_token(session, "U0NOBODY", NOW) is None
    with transaction(session_factory) as session:
        assert team_feed_token(session, NOW) == team, "kept across transactions"
        assert find_feed(session, team) == FeedOwner(user_id=None)
        assert find_feed(session, ada) == FeedOwner(user_id=ADA)
        new_team, new_ada = reset_team_token(session, NOW), reset_member_token(session, ADA, NOW)
    with transaction(session_factory) as session:
        assert new_team != team and new_ada != ada
        assert find_feed(session, team) is None and find_feed(session, ada) is None
        assert find_feed(session, new_team) is not None and find_feed(session, new_ada) is not None
        assert session.scalars(select(CalendarFeed)).one().token == new_team
        for bad in ("", "short", "x" * 43 + "\x00", "../" * 20):
            assert find_feed(session, bad) is None
    assert feed_url("https://bot.example/", "abc") == "https://bot.example/ical/abc.ics"


def test_reset_team_token_before_any_use_creates_the_feed(session_factory: sessionmaker[Session]):
    with transaction(session_factory) as session:
        token = reset_team_token(session, NOW)
    with transaction(session_factory) as session:
        assert team_feed_token(session, NOW) == token


def test_two_first_asks_at_once_agree_on_one_team_token(session_factory: sessionmaker[Session]):
    # On PostgreSQL the second insert waits for the first transaction and then hits the
    # unique key; on SQLite the second transaction waits at BEGIN. Either way: one token.
    answers: list[str] = []
    with transaction(session_factory) as session:
        first = team_feed_token(session, NOW)

        def second() -> None:
            with transaction(session_factory) as other:
                answers.append(team_feed_token(other, NOW))

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
    thread.join(10)
    assert answers == [first]


# -- over HTTP, through the running bot ---------------------------------------------


@dataclass
class Answer:
    status: int
    headers: Message  # looks names up regardless of case, as HTTP does
    body: bytes


def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


@pytest.fixture
def rota_bot(
    imap: PymapServer, slack: SlackStandIn, database_url: str, session_factory: sessionmaker[Session]
) -> Iterator[tuple[str, dict[str, str], sessionmaker[Session]]]:
    """A running bot whose clock reads NOW, with a roster, a rota and feed tokens."""
    with transaction(session_factory) as session:
        tokens = {user: add_member(session, user, name).ical_token for user, name in NAMES.items()}
        for start, end, user in ROTA:
            session.add(
                RotaDuty(start=start, end=end, user_id=user, published_at=PUBLISHED, published_by="U0BOSS")
            )
        tokens["team"] = team_feed_token(session, NOW)
    clock = OffsetClock()
    clock.jump_to(NOW)
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    with running_bot(env, clock=clock) as bot:
        yield bot.url, tokens, session_factory


def test_team_feed_over_http(rota_bot, caplog: pytest.LogCaptureFixture):
    base, tokens, _ = rota_bot
    caplog.set_level(logging.DEBUG)
    answer = fetch(feed_url(base, tokens["team"]))
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert answer.headers["Cache-Control"] == "private, max-age=300"
    got = events(answer.body)
    assert [(e["summary"], e["start"], e["end"]) for e in got] == [
        ("On call: Ada Lovelace", *ACROSS_DST[:2]),
        ("On call: Grace Hopper", *AFTER_DST[:2]),
        ("On call: nobody (unassigned)", *UNASSIGNED[:2]),
        ("On call: Ada Lovelace", *LATER[:2]),
    ]
    assert len({e["uid"] for e in got}) == 4
    assert str(Calendar.from_ical(answer.body)["x-wr-calname"]) == "On-call rota"
    assert all(token not in caplog.text for token in tokens.values())


def test_personal_feed_over_http_shows_only_their_duties(rota_bot):
    base, tokens, _ = rota_bot
    grace = fetch(feed_url(base, tokens[GRACE]))
    assert grace.status == 200
    assert [(e["summary"], e["start"]) for e in events(grace.body)] == [("On call (support)", AFTER_DST[0])]
    assert str(Calendar.from_ical(grace.body)["x-wr-calname"]) == "On-call rota: Grace Hopper"
    ada = fetch(feed_url(base, tokens[ADA]))
    assert [e["start"] for e in events(ada.body)] == [ACROSS_DST[0], LATER[0]]


def test_unknown_tokens_and_paths_get_the_same_404(rota_bot):
    base, tokens, _ = rota_bot
    not_found = fetch(f"{base}/no/such/page")
    assert not_found.status == 404
    for path in (
        f"/ical/{tokens['team'][:-1]}x.ics",
        "/ical/" + "A" * 43 + ".ics",
        f"/ical/{tokens['team']}",
        f"/ical/{tokens['team']}.ics/extra",
        "/ical/",
        "/ical/%00.ics",
    ):
        answer = fetch(base + path)
        assert (answer.status, answer.body) == (404, not_found.body), path
        assert answer.headers["Content-Type"] == not_found.headers["Content-Type"]


def test_a_reset_token_stops_the_old_url_and_the_new_one_works(rota_bot):
    base, tokens, factory = rota_bot
    with transaction(factory) as session:
        new_team = reset_team_token(session, NOW)
        new_ada = reset_member_token(session, ADA, NOW)
    assert new_team is not None and new_ada is not None
    assert fetch(feed_url(base, tokens["team"])).status == 404
    assert fetch(feed_url(base, tokens[ADA])).status == 404
    assert fetch(feed_url(base, new_team)).status == 200
    assert len(events(fetch(feed_url(base, new_ada)).body)) == 2
    assert fetch(feed_url(base, tokens[GRACE])).status == 200, "others' URLs keep working"


def test_etag_gives_304_until_the_rota_changes(rota_bot):
    base, tokens, factory = rota_bot
    url = feed_url(base, tokens["team"])
    first = fetch(url)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and fetch(url).headers["ETag"] == etag
    unchanged = fetch(url, headers={"If-None-Match": etag})
    assert (unchanged.status, unchanged.body) == (304, b"")
    assert unchanged.headers["ETag"] == etag
    assert fetch(url, headers={"If-None-Match": f'"other", W/{etag}'}).status == 304
    assert fetch(url, headers={"If-None-Match": '"other"'}).status == 200

    # Grace hands her duty to Ada: the event keeps its UID, so calendar apps move it
    # rather than showing both, and the new ETag makes them refetch.
    swapped_at = NOW + timedelta(hours=1)
    with transaction(factory) as session:
        duty = session.scalars(select(RotaDuty).where(RotaDuty.start == AFTER_DST[0])).one()
        duty.user_id, duty.published_at = ADA, swapped_at
    changed = fetch(url, headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag
    before = {e["uid"]: e for e in events(first.body)}
    after = {e["uid"]: e for e in events(changed.body)}
    assert before.keys() == after.keys()
    moved = next(uid for uid in after if after[uid]["start"] == AFTER_DST[0])
    assert after[moved]["summary"] == "On call: Ada Lovelace" and after[moved]["modified"] == swapped_at
    assert events(fetch(feed_url(base, tokens[GRACE])).body) == []


def test_head_and_other_methods(rota_bot):
    base, tokens, _ = rota_bot
    url = feed_url(base, tokens["team"])
    get, head = fetch(url), fetch(url, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(len(get.body))
    assert head.headers["ETag"] == get.headers["ETag"]
    for method in ("POST", "PUT", "DELETE"):
        answer = fetch(url, method=method)
        assert answer.status == 405 and answer.headers["Allow"] == "GET, HEAD"


def test_waitress_messages_never_show_a_feed_token(rota_bot, caplog: pytest.LogCaptureFixture):
    _, tokens, _ = rota_bot
    caplog.set_level(logging.INFO)
    # What waitress logs, path formatted in, when a calendar app hangs up mid-answer.
    path = f"/ical/{tokens['team']}.ics"
    logging.getLogger("waitress").info(f"Client disconnected while serving {path}")
    assert "serving /ical/***" in caplog.text
    assert tokens["team"] not in caplog.text

"""Stats, charts and exports against a hand-built dataset whose every figure is worked out
by hand below, then `/support stats` and `/support export` end to end through the real bot.

The period is Wednesday 4 to Tuesday 10 November 2026 in Rome (UTC+1), so it holds a
weekend; business hours are Monday to Friday 09:00–18:00. Tickets:

    T1  created Fri 6 17:00, Ada replies Mon 9 10:00, Ada resolves Mon 9 12:00   (the weekend)
    T2  created Wed 4 09:00, Bob replies 09:30, Bob resolves 12:00; the customer writes
        Thu 5 10:00 (reopened), Ada resolves Thu 5 15:00                         (reopened)
    T3  created Sat 7 10:00, only an automatic reply                              (unanswered)
    T4  created Thu 5 14:00, Bob's reply fails 14:10, Bob replies 15:00            (waiting)
    T5  created Mon 2 10:00 (period before), Ada replies Tue 3, resolves Wed 4 11:00
    T6  created Fri 30 Oct 10:00, open                                            (period before)
    T7  created Wed 11 10:00, open                                                (after the period)
"""

from __future__ import annotations

import csv
import io
import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.business_hours import BusinessCalendar
from bot.clock import FrozenClock
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.slack import stats as ui
from bot.stats import charts, exports
from bot.stats.figures import BusinessTime, quantile, waits
from bot.stats.period import Period, PeriodError, parse_period
from bot.stats.report import StatsConfig, StatsReport, build_report
from bot.storage.db import make_engine
from bot.storage.models import (
    Customer,
    Event,
    LedgerLine,
    Message,
    Page,
    PageAttempt,
    RotaDuty,
    RotaMember,
    Survey,
    Tag,
    Ticket,
    TicketTag,
)
from rota.load import LoadWeights
from tests.support.desk import add_people, desk_env
from tests.support.harness import running_bot, wait_until
from tests.support.slack_requests import SlackUser

pytestmark = pytest.mark.timeout(180)

ROME = ZoneInfo("Europe/Rome")
ADA, BOB, CY, MAY, EVE = "U0ADA", "U0BOB", "U0CY", "U0MAY", "U0EVE"  # staff ×3, manager, outsider
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME)
CONFIG = StatsConfig(CALENDAR, LoadWeights(), close_rate_days=7)
PERIOD = Period(datetime(2026, 11, 4).date(), datetime(2026, 11, 10).date(), ROME)
NOW = datetime(2026, 11, 12, 12, 0, tzinfo=ROME)
H, M = 3600.0, 60.0


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ROME)


# -- the dataset --------------------------------------------------------------------------------


class Builder:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.tickets: dict[str, Ticket] = {}
        self.tags: dict[str, Tag] = {}
        self.n = 0

    def ticket(
        self,
        name: str,
        created: datetime,
        *,
        status: str = "open",
        resolved: datetime | None = None,
        tags: tuple[str, ...] = (),
        owner: str | None = None,
    ) -> Ticket:
        customer = Customer(email=f"{name.lower()}@example.com", name=name, created_at=created)
        self.session.add(customer)
        self.session.flush()
        ticket = Ticket(
            number=int(name[1:]),
            customer_id=customer.id,
            subject=f"Subject of {name}",
            status=status,
            owner=owner,
            created_at=created,
            updated_at=created,
            resolved_at=resolved,
        )
        self.session.add(ticket)
        self.session.flush()
        self.tickets[name] = ticket
        self.message(name, "in", created, author=None)
        for tag in tags:
            if tag not in self.tags:
                self.tags[tag] = Tag(name=tag, created_at=created)
                self.session.add(self.tags[tag])
                self.session.flush()
            self.session.add(TicketTag(ticket_id=ticket.id, tag_id=self.tags[tag].id, added_at=created))
        return ticket

    def message(
        self,
        name: str,
        direction: str,
        when: datetime,
        *,
        author: str | None,
        template: str | None = None,
        delivery: str | None = None,
    ) -> None:
        self.n += 1
        self.session.add(
            Message(
                ticket_id=self.tickets[name].id,
                direction=direction,
                mailbox="test",
                dedupe_key=f"m{self.n}",
                author=author,
                created_at=when,
                sent_at=when,
                template_name=template,
                delivery_status=delivery if delivery else ("sent" if direction == "out" else None),
            )
        )

    def reply(self, name: str, when: datetime, author: str, **kwargs: str) -> None:
        self.message(name, "out", when, author=author, **kwargs)

    def event(self, name: str | None, actor: str, action: str, when: datetime, **data: str) -> None:
        ticket_id = self.tickets[name].id if name else None
        self.session.add(Event(ticket_id=ticket_id, actor=actor, action=action, at=when, data=data))

    def survey(
        self, name: str, round_: int, agent: str, resolved: datetime, sent: datetime, **answer: Any
    ) -> None:
        """A survey of the resolution at `resolved`, sent at `sent`; `answer` holds solved,
        comment and answered_at once it is answered."""
        ticket_id = self.tickets[name].id
        self.session.add(
            Survey(
                ticket_id=ticket_id,
                round=round_,
                agent=agent,
                resolved_at=resolved,
                status="sent",
                sent_at=sent,
                **answer,
            )
        )


def build_dataset(session: Session) -> None:
    b = Builder(session)
    b.ticket("T1", at(6, 17), status="resolved", resolved=at(9, 12), tags=("billing",), owner=ADA)
    b.reply("T1", at(9, 10), ADA)
    b.event("T1", ADA, "resolved", at(9, 12), previous="claimed", status="resolved")

    b.ticket("T2", at(4, 9), status="resolved", resolved=at(5, 15), tags=("billing", "refund"), owner=BOB)
    b.reply("T2", at(4, 9, 30), BOB, template="resolved.en")
    b.event("T2", BOB, "resolved", at(4, 12), previous="claimed", status="resolved")
    b.message("T2", "in", at(5, 10), author=None)
    b.event(
        "T2", "customer:t2@example.com", "reopened", at(5, 10), previous_status="resolved", status="claimed"
    )
    b.event("T2", ADA, "resolved", at(5, 15), previous="claimed", status="resolved")

    b.ticket("T3", at(7, 10), tags=("login",))
    b.reply("T3", at(7, 10, 1), "auto", template="auto_ack.en")

    b.ticket("T4", at(5, 14), status="waiting", tags=("login",), owner=BOB)
    b.reply("T4", at(5, 14, 10), BOB, delivery="failed")
    b.reply("T4", at(5, 15), BOB, template="password_reset.en")

    b.ticket("T5", at(2, 10), status="resolved", resolved=at(4, 11), tags=("login",), owner=ADA)
    b.reply("T5", at(3, 10), ADA, template="resolved.en")
    b.event("T5", ADA, "resolved", at(4, 11), previous="claimed", status="resolved")

    b.ticket("T6", at(30, 10, month=10), tags=("billing", "login"))
    b.ticket("T7", at(11, 10))

    b.survey("T5", 1, ADA, at(4, 11), at(4, 12), solved=True, comment="Quick and kind", answered_at=at(4, 18))
    b.survey(
        "T2",
        1,
        BOB,
        at(4, 12),
        at(4, 13),
        solved=False,
        comment="Came back <b>broken</b>",
        answered_at=at(5, 9),
    )
    b.survey("T2", 2, ADA, at(5, 15), at(5, 16), solved=True, answered_at=at(6, 10))
    # Answered after the period, and never answered: neither counts.
    b.survey("T1", 1, ADA, at(9, 12), at(9, 13), solved=False, comment="late", answered_at=at(12, 9))
    b.survey("T4", 1, BOB, at(5, 15), at(5, 16))

    for user, name, weight in ((ADA, "Ada", 1.0), (BOB, "Bob", 1.0), (CY, "Cy", 0.5)):
        session.add(
            RotaMember(
                user_id=user,
                name=name,
                tz="Europe/Rome",
                weight=weight,
                active=True,
                ical_token=f"token-{user}",
                joined_at=at(1, 9),
                updated_at=at(1, 9),
            )
        )
    for start, end, user in (
        (at(2, 9), at(9, 9), ADA),
        (at(9, 9), at(16, 9), BOB),
        (at(26, 9, 10), at(2, 9), CY),
    ):
        session.add(RotaDuty(start=start, end=end, user_id=user, published_at=at(1, 9), published_by=MAY))

    pages = [
        (
            b.tickets["T3"].id,
            at(7, 10),
            BOB,
            at(7, 10, 18),
            [(ADA, at(7, 10)), (ADA, at(7, 10, 5)), (BOB, at(7, 10, 15))],
        ),
        (b.tickets["T1"].id, at(6, 20), ADA, at(6, 20, 7), [(ADA, at(6, 20))]),
        (b.tickets["T6"].id, at(1, 3), ADA, at(1, 3, 1), [(ADA, at(1, 3))]),  # the period before
    ]
    for ticket_id, started, acked_by, acked_at, attempts in pages:
        page = Page(
            ticket_id=ticket_id,
            status="acknowledged",
            step=len(attempts),
            started_at=started,
            acknowledged_by=acked_by,
            acknowledged_at=acked_at,
        )
        session.add(page)
        session.flush()
        for step, (user, when) in enumerate(attempts):
            session.add(PageAttempt(page_id=page.id, step=step, level="oncall", user_id=user, at=when))

    for user, kind, amount, when, note in (
        (BOB, "adjusted", "0.25", at(1, 12), "covered a night"),
        (ADA, "earned", "1", at(9, 9), "week of 2 November"),
        (ADA, "taken", "0.5", at(10, 9), "=SUM(A1)"),
    ):
        session.add(
            LedgerLine(
                user_id=user,
                kind=kind,
                amount=Decimal(amount),
                unit="days",
                at=when,
                note=note,
                created_by=MAY,
                created_at=when,
            )
        )
    session.commit()


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory() as session:
        build_dataset(session)
    return session_factory


@pytest.fixture
def report(factory: sessionmaker[Session]) -> StatsReport:
    with factory() as session:
        return build_report(session, PERIOD, NOW.astimezone(UTC), CONFIG)


# -- pure pieces ---------------------------------------------------------------------------------


def test_quantiles_interpolate_between_ranks() -> None:
    assert quantile([4, 1, 3, 2], 0.5) == 2.5
    assert quantile(list(range(1, 11)), 0.9) == pytest.approx(9.1)
    assert quantile([7], 0.9) == 7
    assert quantile([], 0.5) is None


def test_business_time_agrees_with_the_calendar_across_weekends_and_dst() -> None:
    # 25 October 2026 is when Rome falls back an hour.
    business = BusinessTime(CALENDAR, at(20, 0, month=10), at(15, 0))
    moments = [at(20, 0, month=10) + timedelta(hours=7 * k + 0.25 * (k % 4)) for k in range(90)]
    for start in moments[::7]:
        for end in moments[::5]:
            expected = CALENDAR.business_seconds_between(start, end)
            assert business.seconds_between(start.timestamp(), end.timestamp()) == expected
            [wait] = waits([(start.timestamp(), end.timestamp())], business)
            assert wait.business == expected
    # Outside the span it was built for, it asks the calendar.
    assert business.seconds_between(at(1, 9, month=9).timestamp(), at(2, 9, month=9).timestamp()) == 9 * H


def test_periods_are_whole_local_days() -> None:
    now = at(12, 12)
    week = parse_period([], now, ROME)
    assert (week.first_day.isoformat(), week.last_day.isoformat()) == ("2026-11-06", "2026-11-12")
    assert week.start == at(6, 0) and week.end == at(13, 0)
    assert parse_period(["quarter"], now, ROME).length == 90
    explicit = parse_period(["2026-10-20", "2026-10-26"], now, ROME)
    # The day Rome falls back is 25 hours long.
    assert explicit.boundaries()[6] - explicit.boundaries()[5] == timedelta(hours=25)
    assert explicit.previous().last_day.isoformat() == "2026-10-19"
    for bad in (["yesterday"], ["2026-11-10", "2026-11-01"], ["2026-02-30", "2026-03-01"]):
        with pytest.raises(PeriodError):
            parse_period(bad, now, ROME)


# -- every figure against the hand count ---------------------------------------------------------


def test_volume_per_day_and_backlog(report: StatsReport) -> None:
    by_day = [(v.day.day, v.created, v.resolved, v.reopened, v.backlog) for v in report.volume]
    assert by_day == [
        (4, 1, 2, 0, 1),  # T2 in; T5 and T2 resolved
        (5, 1, 1, 1, 2),  # T4 in; T2 reopened and resolved again
        (6, 1, 0, 0, 3),  # T1
        (7, 1, 0, 0, 4),  # T3
        (8, 0, 0, 0, 4),
        (9, 0, 1, 0, 3),  # T1 resolved
        (10, 0, 0, 0, 3),
    ]
    assert (report.created, report.resolved, report.reopened) == (4, 4, 1)
    assert (report.backlog_start, report.backlog_end) == (2, 3)


def test_first_response_times_skip_robots_and_failed_mail(report: StatsReport) -> None:
    # T2 30 min, T4 1 h (its failed reply does not count), T1 over the weekend; T3 only got a robot.
    first = report.first_response
    assert report.unanswered == 1
    assert (first.calendar.count, first.calendar.median, first.calendar.p90) == (
        3,
        1 * H,
        1 * H + 0.8 * 64 * H,
    )
    # In business hours the weekend vanishes: T1 waited Friday 17–18 and Monday 9–10.
    assert (first.business.median, first.business.p90) == (1 * H, 1 * H + 0.8 * 1 * H)


def test_resolution_times_run_to_the_last_resolution(report: StatsReport) -> None:
    # T2 (reopened): Wed 09:00 → Thu 15:00. T5: Mon 10:00 → Wed 11:00. T1: Fri 17:00 → Mon 12:00.
    resolution = report.resolution
    assert resolution.calendar.count == 3
    assert resolution.calendar.median == 49 * H
    assert resolution.calendar.p90 == pytest.approx(49 * H + 0.8 * 18 * H)
    assert resolution.business.median == 15 * H  # T2: 9 h Wednesday + 6 h Thursday
    assert resolution.business.p90 == pytest.approx(15 * H + 0.8 * 4 * H)  # T5 19 h; T1 4 h
    assert report.daily_resolution[0] == 19 * H and report.daily_resolution[5] == 4 * H


def test_satisfaction_and_comments(report: StatsReport) -> None:
    assert (report.answered, report.solved) == (3, 2)
    assert report.satisfaction == pytest.approx(2 / 3)
    assert [(c.number, c.comment) for c in report.comments] == [
        (2, "Came back <b>broken</b>"),
        (5, "Quick and kind"),
    ]


def test_top_tags_against_the_period_before(report: StatsReport) -> None:
    assert [(t.name, t.count, t.previous, t.change) for t in report.tags] == [
        ("billing", 2, 1, 1),
        ("login", 2, 2, 0),
        ("refund", 1, 0, 1),
    ]
    assert report.tags[0].change_ratio == 1.0 and report.tags[2].change_ratio is None


def test_per_person_figures(report: StatsReport) -> None:
    ada, bob, cy = report.person(ADA), report.person(BOB), report.person(CY)
    assert (ada.handled, ada.replies, ada.answered, ada.solved) == (3, 1, 2, 2)  # T1, T2, T5
    assert (bob.handled, bob.replies, bob.answered, bob.solved) == (2, 2, 1, 0)  # T2, T4
    # Ada's week from Mon 2 09:00, clipped to Wed 4 00:00 → Mon 9 09:00: three weeknights
    # of 15 h, the weekend's 48 h and Monday's 9 early hours. Bob: Mon 9 18:00 → Wed 11 00:00.
    assert ada.on_call.duties == 1 and ada.on_call.hours == pytest.approx(102)
    assert ada.on_call.hours_by_kind == pytest.approx({"weeknight": 54, "weekend": 48})
    assert ada.on_call.load == pytest.approx(54 + 48 * 1.5)
    assert (bob.on_call.duties, bob.on_call.hours) == (1, pytest.approx(21))
    assert cy.on_call.duties == 0
    # Pages: Ada was paged for T3 (twice) and T1, Bob for T3 after the escalation.
    assert (ada.pages, ada.acknowledged, ada.ack_median) == (2, 1, 7 * M)
    assert (bob.pages, bob.acknowledged, bob.ack_median) == (1, 1, 3 * M)
    assert ada.balances == {"days": Decimal("0.5")} and bob.balances == {"days": Decimal("0.25")}
    assert "auto" not in report.people


def test_rota_balance_and_templates(report: StatsReport) -> None:
    # Loads 126 (Ada), 21 (Bob), 0 (Cy): pairs 21/126, 0, 0.
    assert report.balance == pytest.approx((21 / 126) / 3)
    assert report.roster == {ADA: 1.0, BOB: 1.0, CY: 0.5}
    uses = {t.name: (t.replies, t.tickets, t.close_uses, t.close_rate) for t in report.templates}
    # T2's resolved.en reply did not close it (its customer wrote again the next day); the
    # other two replies are less than CLOSE_RATE_DAYS old, so their outcome is not known yet.
    assert uses == {
        "auto_ack.en": (1, 1, 0, None),
        "password_reset.en": (1, 1, 0, None),
        "resolved.en": (1, 1, 1, 0.0),
    }


def test_close_rates_follow_the_automation_rule(factory: sessionmaker[Session]) -> None:
    """Over a period holding every reply, the stats' close rates are `/support automation`'s."""
    automation = pytest.importorskip("bot.tickets.automation")
    everything = Period(datetime(2026, 10, 1).date(), datetime(2026, 11, 12).date(), ROME)
    with factory() as session:
        report = build_report(session, everything, NOW, CONFIG)
        expected = {s.name: (s.uses, s.rate) for s in automation.close_rates(session, NOW, days=7)}
    assert expected == {"resolved.en": (2, 0.5)}  # T5 closed; T2 not
    assert {t.name: (t.close_uses, t.close_rate) for t in report.templates if t.close_uses} == expected


def test_a_status_set_back_from_resolved_counts_as_a_reopen(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        b = Builder(session)
        b.ticket("T1", at(4, 9), status="waiting")
        b.event("T1", ADA, "resolved", at(4, 10), previous="claimed", status="resolved")
        b.event("T1", ADA, "waiting_on_customer", at(5, 10), previous="resolved", status="waiting")
        b.event("T1", ADA, "waiting_on_customer", at(5, 11), previous="claimed", status="waiting")
        session.commit()
        report = build_report(session, PERIOD, NOW, CONFIG, full=False)
    assert [(v.resolved, v.reopened, v.backlog) for v in report.volume[:2]] == [(1, 0, 0), (0, 1, 1)]


def test_staff_blocks_show_only_their_own(report: StatsReport) -> None:
    mine = json.dumps(ui.personal_blocks(report, ADA))
    assert "Tickets handled*\\n3" in mine and "Quick and kind" in mine
    assert BOB not in mine and "Came back" not in mine and "billing" not in mine
    team = json.dumps(ui.team_blocks(report))
    assert f"<@{ADA}>" in team and f"<@{BOB}>" in team and "&lt;b&gt;broken" in team


# -- charts and exports ----------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_charts_are_pngs_of_the_fixed_size(report: StatsReport) -> None:
    drawn = charts.report_charts(report, report.names)
    assert [c.filename.split("-2026")[0] for c in drawn] == ["volume", "response-times", "tags", "on-call"]
    for chart in drawn:
        assert png_size(chart.png) == (charts.WIDTH, charts.HEIGHT) == (1000, 500)
    empty = charts.tags_chart([])
    assert png_size(empty) == (1000, 500)


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_exports(factory: sessionmaker[Session]) -> None:
    start, end = PERIOD.start, PERIOD.end
    with factory() as session:
        tickets = rows_of(exports.tickets_csv(session, start, end))
        events = rows_of(exports.events_csv(session, start, end))
        rota = rows_of(exports.rota_csv(session, start, end, CALENDAR, LoadWeights()))
        ledger = rows_of(exports.ledger_csv(session, start, end))
    assert tickets[0] == exports.TICKET_COLUMNS
    assert [r[0] for r in tickets[1:]] == ["2", "4", "1", "3"]
    t1 = tickets[3]
    assert t1[1:6] == [
        "2026-11-06T16:00:00Z",
        "resolved",
        ADA,
        "2026-11-09T09:00:00Z",
        "2026-11-09T11:00:00Z",
    ]
    assert t1[8] == "billing" and tickets[1][8] == "billing;refund"
    assert events[0] == exports.EVENT_COLUMNS and len(events) == 1 + 5
    assert rota[0] == exports.ROTA_COLUMNS
    # Whole weeks, not clipped: Monday evening 6 h, four weeknights of 15 h, 48 h of weekend, 9 h.
    assert [(r[2], r[3], r[5]) for r in rota[1:]] == [(ADA, "Ada", "123.00"), (BOB, "Bob", "123.00")]
    assert ledger[0] == exports.LEDGER_COLUMNS
    assert [(r[1], r[4], r[6], r[7]) for r in ledger[1:]] == [
        (ADA, "1.00", "1.00", "week of 2 November"),
        (ADA, "-0.50", "0.50", "'=SUM(A1)"),  # a formula in a note is defused
    ]


# -- /support stats and /support export end to end ------------------------------------------------


@pytest.fixture
def bot_url(
    imap: PymapServer, slack: SlackStandIn, database_url: str, factory: sessionmaker[Session]
) -> Iterator[str]:
    add_people(slack, {ADA: "ada", BOB: "bob", CY: "cy"}, managers={MAY: "may"}, outsiders={EVE: "eve"})
    env = desk_env(slack, imap, database_url, MANAGERS=MAY)
    engine: Engine = make_engine(database_url)
    try:
        with running_bot(env, clock=FrozenClock(NOW)) as bot:
            yield bot.url
    finally:
        engine.dispose()


def command(url: str, slack: SlackStandIn, user: str, text: str) -> dict[str, object]:
    answer = SlackUser(url, slack, user).command(text)
    assert answer.status == 200, answer.body
    return answer.json()


def test_support_stats_end_to_end(bot_url: str, slack: SlackStandIn) -> None:
    answer = command(bot_url, slack, MAY, "stats 2026-11-04 2026-11-10")
    team = json.dumps(answer["blocks"])
    assert "Support stats, 2026-11-04 to 2026-11-10" in team and f"<@{BOB}>" in team
    uploads = wait_until(lambda: len(slack.files) >= 4 and slack.files, what="the charts")
    assert {u["channel"] for u in uploads} == {slack.dm_channels[MAY]}
    assert all(png_size(u["content"]) == (1000, 500) for u in uploads)

    mine = command(bot_url, slack, ADA, "stats 2026-11-04 2026-11-10")
    assert "Your stats" in mine["text"] and BOB not in json.dumps(mine["blocks"])
    refused = command(bot_url, slack, EVE, "stats")
    assert "Only support staff" in str(refused["text"]) and "blocks" not in refused
    assert "I can't read" in str(command(bot_url, slack, MAY, "stats fortnight")["text"])
    assert len(slack.files) == 4  # staff and refusals upload nothing


def test_support_export_end_to_end(bot_url: str, slack: SlackStandIn) -> None:
    assert "Only managers" in str(command(bot_url, slack, ADA, "export tickets")["text"])
    answer = command(bot_url, slack, MAY, "export tickets 2026-11-04 2026-11-10")
    assert "on their way" in str(answer["text"])
    upload = wait_until(lambda: slack.files, what="the CSV")[0]
    assert upload["channel"] == slack.dm_channels[MAY]
    assert upload["name"] == "support-tickets-20261104-20261110.csv"
    rows = rows_of(upload["content"].decode())
    assert rows[0] == exports.TICKET_COLUMNS and len(rows) == 5
    assert "Export what?" in str(command(bot_url, slack, MAY, "export everything")["text"])


def test_managers_app_home_has_the_week_at_a_glance(bot_url: str, slack: SlackStandIn) -> None:
    SlackUser(bot_url, slack, MAY).open_home()
    home = wait_until(lambda: slack.home.get(MAY), what="the manager's home")
    assert "Last 7 days" in json.dumps(home["blocks"])
    SlackUser(bot_url, slack, ADA).open_home()
    staff_home = wait_until(lambda: slack.home.get(ADA), what="a staff member's home")
    assert "Last 7 days" not in json.dumps(staff_home["blocks"])

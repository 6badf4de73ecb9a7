"""The quarter's stats over a year of data: 100,000 tickets with replies, tags, surveys,
events and pages, and a year of the on-call rota with its ledger.

Reported: the time of `/support stats quarter` (the figures the bot answers with; the
charts are drawn after Slack has its answer and are timed apart), each part's time (on
PostgreSQL the statements run side by side, so a part's time includes waiting for its
rows), each SQL statement's time, and the plan of the slowest statement (EXPLAIN ANALYZE on
PostgreSQL, EXPLAIN QUERY PLAN on SQLite). Targets: < 1 s on PostgreSQL, < 2 s on SQLite.

    .venv/bin/python -m benchmarks.bench_stats                    # SQLite, 100,000 tickets
    .venv/bin/python -m benchmarks.bench_stats 20000              # fewer tickets
    .venv/bin/python -m benchmarks.bench_stats --postgres postgresql://127.0.0.1:5432/test

With --postgres a scratch database is created beside the one named, and dropped at the end.
With --keep the data is kept for the next run instead, and reused when it is there
(PostgreSQL: database sb_bench_stats_kept_<tickets>; SQLite: a file in the temporary
directory), so profiling does not regenerate 100,000 tickets each time:

    .venv/bin/python -m benchmarks.bench_stats --keep --postgres postgresql://127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event, insert
from sqlalchemy.orm import Session, sessionmaker

from benchmarks._setup import fresh_sqlite, machine
from bot.business_hours import BusinessCalendar
from bot.stats.period import parse_period
from bot.stats.report import StatsConfig, Timings, build_report
from bot.storage.db import make_engine, make_sessionmaker, upgrade
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

ROME = ZoneInfo("Europe/Rome")
CALENDAR = BusinessCalendar.from_spec("mon-fri 09:00-18:00", ROME, "IT")
# A year ending on Monday 4 January 2027, 09:00 in Rome (a hand-off): "now" is then.
NOW = datetime(2027, 1, 4, 8, tzinfo=UTC)
YEAR_START = NOW - timedelta(weeks=52)
STAFF = [f"U0S{n:02d}" for n in range(12)]
TAGS = [f"tag-{n:02d}" for n in range(30)]
TEMPLATES = [f"template_{n}.{lang}" for n in range(8) for lang in ("en", "it")]
CHUNK = 5000
RUNS = 5
TARGETS = {"postgresql": 1.0, "sqlite": 2.0}


def _chunks(rows: list[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _insert(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        session.execute(insert(model), chunk)


def _created_at(rng: random.Random) -> datetime:
    """Mostly business hours on weekdays, as support mail arrives; some at night and weekends."""
    while True:
        moment = YEAR_START + timedelta(seconds=rng.uniform(0, (NOW - YEAR_START).total_seconds()))
        if CALENDAR.is_open(moment) or rng.random() < 0.25:
            return moment


def generate(
    factory: sessionmaker[Session],
    tickets: int,
    seed: int = 2026,
    *,
    message_text: Callable[[int], str] | None = None,
) -> dict[str, int]:
    """The year's data in one transaction; `message_text(ticket_id)` writes each message's text
    (bench_search needs bodies to search; the stats never read them, so they are empty by default)."""
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    customers = [
        {"id": n + 1, "email": f"customer{n}@example.com", "name": f"Customer {n}", "created_at": YEAR_START}
        for n in range(max(1, tickets // 5))
    ]
    ticket_rows, message_rows, event_rows, tag_rows, survey_rows = [], [], [], [], []
    page_rows, attempt_rows = [], []
    for n in range(tickets):
        ticket_id = n + 1
        created = _created_at(rng)
        agent = rng.choice(STAFF)
        # Most first replies within a few business hours; a tail of days.
        first_reply = created + timedelta(minutes=rng.expovariate(1 / 180))
        resolved_at = first_reply + timedelta(minutes=rng.expovariate(1 / 1500))
        resolved = resolved_at < NOW and rng.random() < 0.97
        status = "resolved" if resolved else rng.choice(["open", "claimed", "waiting"])
        ticket_rows.append(
            {
                "id": ticket_id,
                "number": ticket_id,
                "customer_id": rng.randint(1, len(customers)),
                "subject": f"Question {ticket_id}",
                "status": status,
                "owner": None if status == "open" else agent,
                "created_at": created,
                "updated_at": created,
                "resolved_at": resolved_at if resolved else None,
            }
        )

        def message(
            direction: str,
            at: datetime,
            author: str | None,
            template: str | None = None,
            ticket_id: int = ticket_id,
        ) -> None:
            message_rows.append(
                {
                    "ticket_id": ticket_id,
                    "direction": direction,
                    "mailbox": "bench",
                    "dedupe_key": f"{ticket_id}-{len(message_rows)}",
                    "author": author,
                    "created_at": at,
                    "sent_at": at,
                    "delivery_status": "sent" if direction == "out" else None,
                    "template_name": template,
                    "text": message_text(ticket_id) if message_text else "",
                    "references": [],
                    "headers": [],
                    "defects": [],
                }
            )

        def event_row(action: str, at: datetime, actor: str, ticket_id: int = ticket_id, **data: str) -> None:
            event_rows.append(
                {"ticket_id": ticket_id, "actor": actor, "action": action, "at": at, "data": data}
            )

        message("in", created, None)
        event_row("ticket_created", created, f"customer:{ticket_id}@example.com")
        if not CALENDAR.is_open(created) and rng.random() < 0.5:
            message("out", created + timedelta(seconds=20), "auto", "auto_ack.en")
            event_row("replied", created + timedelta(seconds=20), "auto")
        if first_reply < NOW and status != "open":
            template = rng.choice(TEMPLATES) if rng.random() < 0.4 else None
            message("out", first_reply, agent, template)
            event_row("replied", first_reply, agent)
            event_row("waiting_on_customer", first_reply, agent, previous="claimed", status="waiting")
        if resolved:
            event_row("resolved", resolved_at, agent, previous="waiting", status="resolved")
            if rng.random() < 0.05:  # reopened by the customer, resolved again a day later
                again = resolved_at + timedelta(hours=rng.uniform(1, 48))
                if again + timedelta(days=1) < NOW:
                    message("in", again, None)
                    event_row("reopened", again, "customer:x", previous_status="resolved", status="claimed")
                    message("out", again + timedelta(hours=2), agent)
                    event_row(
                        "resolved", again + timedelta(days=1), agent, previous="claimed", status="resolved"
                    )
                    ticket_rows[-1]["resolved_at"] = again + timedelta(days=1)
            if rng.random() < 0.3:
                answered = ticket_rows[-1]["resolved_at"] + timedelta(hours=rng.uniform(1, 72))
                if answered < NOW:
                    survey_rows.append(
                        {
                            "ticket_id": ticket_id,
                            "round": 1,
                            "agent": agent,
                            "resolved_at": ticket_rows[-1]["resolved_at"],
                            "status": "sent",
                            "sent_at": ticket_rows[-1]["resolved_at"],
                            "solved": rng.random() < 0.85,
                            "comment": "Thanks!" if rng.random() < 0.2 else None,
                            "answered_at": answered,
                        }
                    )
        for tag in rng.sample(range(len(TAGS)), rng.choice([0, 1, 1, 2])):
            # A skewed choice, so the top tags are a real ranking.
            tag_rows.append(
                {
                    "ticket_id": ticket_id,
                    "tag_id": 1 + min(tag, rng.randrange(len(TAGS))),
                    "added_at": created,
                }
            )
        if not CALENDAR.is_open(created) and rng.random() < 0.04:
            page_rows.append(
                {
                    "id": len(page_rows) + 1,
                    "ticket_id": ticket_id,
                    "status": "acknowledged",
                    "step": 1,
                    "started_at": created,
                    "acknowledged_by": agent,
                    "acknowledged_at": created + timedelta(minutes=rng.uniform(1, 15)),
                }
            )
            attempt_rows.append(
                {"page_id": len(page_rows), "step": 0, "level": "oncall", "user_id": agent, "at": created}
            )
    # Two tags on one ticket may collide after the skew: keep the first.
    tag_rows = list({(r["ticket_id"], r["tag_id"]): r for r in tag_rows}.values())

    members = [
        {
            "user_id": user,
            "name": f"Person {n}",
            "tz": "Europe/Rome",
            "weight": 0.5 if n >= 10 else 1.0,
            "active": True,
            "ical_token": f"bench-token-{user}",
            "joined_at": YEAR_START,
            "updated_at": YEAR_START,
        }
        for n, user in enumerate(STAFF)
    ]
    duties, ledger_rows = [], []
    for week in range(52):
        start = YEAR_START + timedelta(weeks=week)
        holder = STAFF[week % len(STAFF)]
        duties.append(
            {
                "id": week + 1,
                "start": start,
                "end": start + timedelta(weeks=1),
                "user_id": holder,
                "published_at": YEAR_START,
                "published_by": "U0MANAGER",
            }
        )
        ledger_rows.append(
            {
                "user_id": holder,
                "kind": "earned",
                "amount": Decimal(1),
                "unit": "days",
                "at": start + timedelta(weeks=1),
                "note": "a week on call",
                "duty_id": week + 1,
                "created_by": "system",
                "created_at": start + timedelta(weeks=1),
            }
        )

    with factory.begin() as session:
        _insert(session, Customer, customers)
        _insert(
            session,
            Tag,
            [{"id": n + 1, "name": name, "created_at": YEAR_START} for n, name in enumerate(TAGS)],
        )
        for model, rows in (
            (Ticket, ticket_rows),
            (Message, message_rows),
            (Event, event_rows),
            (TicketTag, tag_rows),
            (Survey, survey_rows),
            (Page, page_rows),
            (PageAttempt, attempt_rows),
            (RotaMember, members),
            (RotaDuty, duties),
            (LedgerLine, ledger_rows),
        ):
            _insert(session, model, rows)
            counts[model.__tablename__] = len(rows)
    return counts


class StatementLog:
    """Every SQL statement a report runs, to be timed again one by one afterwards.

    The time around `cursor.execute` is not the statement's cost: SQLite does most of
    its work while the rows are fetched. So each one is replayed on a raw connection
    with its own parameters and timed until its last row is in.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []

    @contextmanager
    def listening(self) -> Iterator[None]:
        def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            if statement.lstrip()[:6].upper() in ("SELECT", "WITH"):  # not BEGIN, not PRAGMA
                self.statements.append((statement, parameters))

        event.listen(self.engine, "before_cursor_execute", record)
        try:
            yield
        finally:
            event.remove(self.engine, "before_cursor_execute", record)

    def timed(self) -> list[tuple[float, str, Any]]:
        """(seconds, statement, parameters), best of three, slowest first."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            timed = []
            for statement, parameters in self.statements:
                best = float("inf")
                for _ in range(3):
                    began = time.perf_counter()
                    cursor.execute(statement, parameters)
                    cursor.fetchall()
                    best = min(best, time.perf_counter() - began)
                timed.append((best, statement, parameters))
            raw.rollback()
        finally:
            raw.close()
        return sorted(timed, key=lambda t: -t[0])


def explain(engine: sa.Engine, statement: str, parameters: Any) -> list[str]:
    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(("EXPLAIN ANALYZE " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters)
        rows = cursor.fetchall()
        raw.rollback()
    finally:
        raw.close()
    if postgres:
        return [str(r[0]) for r in rows]
    # EXPLAIN QUERY PLAN rows are (id, parent, notused, detail): indent children under parents.
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + str(detail))
    return lines


def run(url: str, tickets: int, *, reuse: bool = False) -> None:
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    backend = engine.dialect.name
    began = time.perf_counter()
    if reuse:
        with factory() as session:
            counts = {
                model.__tablename__: int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
                for model in (Ticket, Message, Event, TicketTag, Survey, Page)
            }
    else:
        counts = generate(factory, tickets)
    generated = time.perf_counter() - began
    if backend == "postgresql" and not reuse:
        # Autovacuum would have vacuumed and analysed tables this size (PostgreSQL 13 and later
        # vacuum after bulk inserts too) long before anyone asked for a quarter's stats.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    print(f"stats benchmark, {'PostgreSQL' if backend == 'postgresql' else 'SQLite'} ({machine()})")
    print(
        f"  {'reused' if reuse else 'generated'} in {generated:.1f} s: "
        + ", ".join(f"{n:,} {t}" for t, n in counts.items())
    )

    config = StatsConfig(CALENDAR, LoadWeights(), close_rate_days=7)
    period = parse_period(["quarter"], NOW - timedelta(seconds=1), ROME)
    times: list[float] = []
    best: Timings | None = None
    log = StatementLog(engine)
    report = None
    for attempt in range(RUNS):
        timings = Timings()
        with factory() as session, log.listening() if attempt == RUNS - 1 else _nothing():
            start = time.perf_counter()
            report = build_report(session, period, NOW, config, timings)
            times.append(time.perf_counter() - start)
        if best is None or sum(timings.seconds.values()) < sum(best.seconds.values()):
            best = timings
    assert report is not None and best is not None
    target = TARGETS[backend]
    verdict = "met" if min(times) < target else "NOT MET"
    print(
        f"  quarter {period.label()}: {report.created:,} tickets created, {report.resolved:,} resolutions, "
        f"{report.first_response.business.count:,} first responses, {report.answered:,} surveys"
    )
    print(
        f"  /support stats quarter: best {min(times) * 1000:.0f} ms, first (cold) {times[0] * 1000:.0f} ms, "
        f"median {sorted(times)[len(times) // 2] * 1000:.0f} ms of {RUNS} "
        f"(target < {target:.0f} s: {verdict})"
    )
    print("  parts (best run): " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in best.seconds.items()))
    print("  statements (last run, each replayed alone, best of 3), slowest first:")
    ranked = log.timed()
    for seconds, statement, _ in ranked[:12]:
        print(f"    {seconds * 1000:7.1f} ms  {' '.join(statement.split())[:130]}")
    slowest_time, slowest, parameters = ranked[0]
    print(f"  plan of the slowest ({slowest_time * 1000:.1f} ms):")
    print("    " + " ".join(slowest.split()))
    for line in explain(engine, slowest, parameters):
        print("    " + line)

    from bot.stats.charts import report_charts

    start = time.perf_counter()
    report_charts(report, report.names)
    print(
        f"  charts (after the answer, for information): {(time.perf_counter() - start) * 1000:.0f} ms for 4"
    )
    engine.dispose()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _postgres_database(
    admin_url: str, kept: str | None = None, scratch: str = "sb_bench_stats"
) -> tuple[str, sa.Engine, str, bool]:
    """(url, admin engine, name, reused): a scratch database, or the `kept` one if it is there."""
    name = kept or f"{scratch}_{os.getpid()}"
    url = sa.engine.make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    rendered = url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if kept and exists and _populated(rendered):
            return rendered, admin, name, True
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    upgrade(rendered)
    return rendered, admin, name, False


def _populated(url: str) -> bool:
    """Whether a kept database holds a finished run's data (the ledger is written last)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(sa.select(sa.func.count()).select_from(LedgerLine)))
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tickets", nargs="?", type=int, default=100_000)
    parser.add_argument(
        "--postgres", metavar="URL", help="run on PostgreSQL, in a scratch database beside URL"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated data for the next run, and reuse it if kept"
    )
    args = parser.parse_args(argv)
    with bench_database("stats", args.tickets, postgres=args.postgres, keep=args.keep) as (url, reused):
        run(url, args.tickets, reuse=reused)


@contextmanager
def bench_database(
    kind: str, tickets: int, *, postgres: str | None, keep: bool
) -> Iterator[tuple[str, bool]]:
    """(url, reused): a scratch database for a benchmark of `kind`, on PostgreSQL beside
    `postgres` or SQLite; with `keep`, one kept by name and reused when complete."""
    if postgres:
        kept = f"sb_bench_{kind}_kept_{tickets}" if keep else None
        url, admin, name, reused = _postgres_database(postgres, kept, scratch=f"sb_bench_{kind}")
        try:
            yield url, reused
        finally:
            if not keep:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        return
    if keep:
        path = Path(tempfile.gettempdir()) / f"sb-bench-{kind}-kept-{tickets}.sqlite3"
        url = f"sqlite:///{path}"
        reused = path.exists() and _populated(url)
        if not reused:
            path.unlink(missing_ok=True)
            upgrade(url)
        yield url, reused
        return
    with fresh_sqlite() as (url, _):
        yield url, False


if __name__ == "__main__":
    main()

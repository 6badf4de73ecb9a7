"""A busy hour: 2,000 customer mails in an hour while 10 staff work tickets at once; or a real team's.

The bot runs as `supportbot run` in its own process, in HTTP mode, against an IMAP server
(pymap, or Dovecot with `--server dovecot`), the Slack stand-in and an SMTP catcher. Mail
arrives at random times at the rate of 2,000 an hour (15% follow-ups to earlier tickets,
one burst of 30 at once halfway), compressed by `--speedup`; Slack's pace of one message
per second per channel is compressed by the same factor, so the ratio of arrivals to
Slack's pace is the real one. `--speedup 1` is the real hour. Staff act at human speed
(every `--think` seconds on average, not sped up) with signed requests into
`/slack/events`: claim, tag, reply from the modal (templates or their own words),
resolve, notes, `/support open|mine|ticket N|stats`, `/oncall`, App Home.

`--team realistic` is a real team's hour instead, at the real pace unless `--speedup` says
otherwise: 200 mails an hour at random (Poisson) times for `--minutes` (default 20), 15%
follow-ups, no burst, and 10 staff (2 managers) whose actions follow the tickets: each new
ticket is claimed by one person 15 s + 75 s on average after it appears, answered 30 s + 90 s
after the claim and, for 40% of tickets, again 60 s + 180 s later (a template for 60% of
replies, their own words otherwise), tagged (30%) or noted in its thread (20%) meanwhile, and
resolved 20 s + 60 s after its last reply; everyone also looks something up (`/support
open|mine|ticket N|stats`, App Home) every 6 minutes on average. That is about 170 tickets,
240 replies and 440 channel posts an hour (one every 8 s). `--activity 3` brings three times
the mail, so three times the tickets and their actions, and looks up three times as often.
The numbers are in `tests/support/load.py`, `RealisticTeam`.

Reported: each handler's latency (request → HTTP answer, the ack Slack waits for; and,
where the answer comes through the Web API, request → the modal or App Home at the
stand-in) by kind and overall, against the target p99 < 1 s; the delay from APPEND to the
post in Slack (all mail, and new tickets alone); how long each kind of outbox row waited
(the longest thread post's wait among them); how often two or more thread posts of one
ticket waited at once (would merging them save posts?); and what must hold: every mail one
ticket or follow-up, posts in arrival order and never faster than the pace, every reply
mailed once.

    .venv/bin/python -m benchmarks.bench_load                       # SQLite, pymap, 2,000 mails, x60
    .venv/bin/python -m benchmarks.bench_load --server dovecot --speedup 1
    .venv/bin/python -m benchmarks.bench_load --team realistic --minutes 25     # the real pace
    .venv/bin/python -m benchmarks.bench_load --team realistic --minutes 25 --activity 3
    BENCH_DATABASE_URL=postgresql://127.0.0.1:5432/test .venv/bin/python -m benchmarks.bench_load
    .venv/bin/python -m benchmarks.bench_load --database-url postgresql://127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks._setup import fresh_sqlite, machine
from bot.outbox.queue import SLACK_THREAD_MESSAGE, SLACK_TICKET_POST, SLACK_TICKET_REFRESH
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import upgrade
from tests.support.dovecot import DovecotServer, dovecot_binary
from tests.support.harness import CHANNEL
from tests.support.load import (
    ANSWER_KINDS,
    MAILS_PER_HOUR,
    REALISTIC_FOLLOW_UP_DISTANCE,
    REALISTIC_MAILS_PER_HOUR,
    WINDOW,
    LoadPlan,
    LoadReport,
    run_and_check,
)

TARGET_P99 = 1.0


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new database on the server of `admin_url`, migrated, dropped afterwards."""
    admin_url = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"sb_bench_load_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _print_report(
    plan: LoadPlan, report: LoadReport, run: Any, backend: str, server: str, bot_log: str
) -> None:
    # pymap slows down as its maildir grows: when it cannot take mail as fast as planned,
    # say how fast the mail really came.
    effective = plan.span * plan.speedup / run.span_seconds if run.span_seconds else plan.speedup
    staff = (
        f"a realistic team of {plan.staff} (activity x{plan.activity:g})"
        if plan.team == "realistic"
        else f"{plan.staff} staff acting every ~{plan.think:g} s"
    )
    print(
        f"load: {plan.mails} mails at {plan.rate:,.0f}/hour x{plan.speedup:g} ({run.span_seconds:.0f} s, "
        f"effectively x{min(effective, plan.speedup):.1f}), "
        f"{staff}, pace {plan.pace * 1000:.1f} ms, "
        f"{backend}, {server} ({machine()}, load average {os.getloadavg()[0]:.1f})"
    )
    print(f"  {'handler':<24}{'n':>6}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}   ms")

    def line(label: str, spread: Any) -> None:
        print(
            f"  {label:<24}{spread.count:>6}{spread.p50 * 1000:>8.0f}{spread.p95 * 1000:>8.0f}"
            f"{spread.p99 * 1000:>8.0f}{spread.max * 1000:>8.0f}"
        )

    for kind, spread in sorted(report.by_kind.items(), key=lambda kv: (kv[0] in ANSWER_KINDS, kv[0])):
        line(kind, spread)
    line("all acks", report.acks)
    line("all Web API answers", report.answers)
    worst = max(report.acks.p99, report.answers.p99)
    verdict = "met" if worst < TARGET_P99 else "NOT met"
    print(f"  p99 target < {TARGET_P99 * 1000:.0f} ms: {verdict} (worst p99 {worst * 1000:.0f} ms)")
    backlog = report.backlog
    print(
        f"  APPEND -> post in Slack: p50 {backlog.p50 * 1000:.0f} ms, p95 {backlog.p95 * 1000:.0f} ms, "
        f"max {backlog.max * 1000:.0f} ms; appender behind schedule at worst {run.append_lag * 1000:.0f} ms; "
        f"drained {run.drain_seconds:.1f} s after the last mail"
    )
    new = report.new_posts
    print(
        f"  of which new tickets ({new.count}): p50 {new.p50 * 1000:.0f} ms, p95 {new.p95 * 1000:.0f} ms, "
        f"max {new.max * 1000:.0f} ms"
    )
    # Queued -> delivered, from the outbox's own rows; x speedup gives the wait at Slack's real pace.
    speedup = plan.speedup
    for kind, label in (
        (SLACK_TICKET_POST, "new tickets' posts"),
        (SLACK_THREAD_MESSAGE, "thread posts"),
        (SLACK_TICKET_REFRESH, "card edits"),
    ):
        wait = report.outbox_waits.get(kind)
        if wait is not None and wait.count:
            print(
                f"  outbox wait, {label} ({wait.count}): p50 {wait.p50 * 1000:.0f} ms, "
                f"p95 {wait.p95 * 1000:.0f} ms, longest {wait.max * 1000:.0f} ms"
                f" (at the real pace: p95 {wait.p95 * speedup:.1f} s, longest {wait.max * speedup:.1f} s)"
            )
    ingest = report.ingest
    print(
        f"  of which APPEND -> stored: p50 {ingest.p50 * 1000:.0f} ms, p95 {ingest.p95 * 1000:.0f} ms, "
        f"max {ingest.max * 1000:.0f} ms"
    )
    print(
        f"  {report.tickets} tickets + {report.follow_ups} follow-ups; {report.posts} channel writes, "
        f"closest two {report.min_gap * 1000:.1f} ms apart, "
        f"tightest run of {WINDOW} at {report.tightest_window:.2f}x the pace"
    )
    print(f"  replies sent from the modal {report.replies_sent}, mailed {report.replies_mailed}")
    print(
        f"  two or more thread posts of one ticket waiting at once: {report.thread_overlaps} times "
        f"(at most {report.thread_most_waiting} together)"
    )
    if plan.team == "realistic":
        print(
            f"  the team's ticket actions: {run.team_planned} planned, {run.team_done} done "
            "before the mail stopped (the rest belong to tickets still being worked on)"
        )
    errors = [line for line in bot_log.splitlines() if " ERROR " in line or "Traceback" in line]
    for text in errors[:10]:
        print("  bot error:", text[:300])
    print("  problems:", "; ".join(report.problems) if report.problems else "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="An hour at the support desk: mail arriving while staff work tickets."
    )
    parser.add_argument(
        "--team",
        choices=("busy", "realistic"),
        default="busy",
        help="busy: 2,000 mails an hour, everyone acting every --think s; realistic: 200 an hour, "
        "staff acting on tickets with human delays (tests/support/load.py, RealisticTeam)",
    )
    parser.add_argument("--mails", type=int, help="how many mails (busy: 2,000; realistic: --minutes' worth)")
    parser.add_argument(
        "--mails-per-hour", type=float, help="the rate at the real pace (busy 2,000, realistic 200)"
    )
    parser.add_argument(
        "--activity",
        type=float,
        default=1.0,
        help="realistic team: mail and lookups this many times as often",
    )
    parser.add_argument(
        "--minutes", type=float, default=20.0, help="realistic team: real minutes of mail (default 20)"
    )
    parser.add_argument("--speedup", type=float, help="1 is the real pace (default: busy 60, realistic 1)")
    parser.add_argument("--staff", type=int, default=10)
    parser.add_argument(
        "--think", type=float, default=3.0, help="busy team: mean seconds between one person's actions"
    )
    parser.add_argument("--server", choices=("pymap", "dovecot"), default="pymap")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "").strip(),
        help="a PostgreSQL server to create a scratch database on (default: SQLite)",
    )
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    if args.server == "dovecot" and dovecot_binary() is None:
        raise SystemExit("dovecot is not installed (apt-get install dovecot-imapd)")
    if args.team == "realistic":
        rate = args.mails_per_hour or REALISTIC_MAILS_PER_HOUR
        plan = LoadPlan(
            mails=args.mails or round(rate * args.activity * args.minutes / 60),
            speedup=args.speedup or 1.0,
            staff=args.staff,
            seed=args.seed,
            team="realistic",
            mails_per_hour=rate,
            activity=args.activity,
            burst=0,
            follow_up_distance=REALISTIC_FOLLOW_UP_DISTANCE,
        )
    else:
        plan = LoadPlan(
            mails=args.mails or 2000,
            speedup=args.speedup or 60.0,
            staff=args.staff,
            think=args.think,
            seed=args.seed,
            mails_per_hour=args.mails_per_hour or MAILS_PER_HOUR,
        )
    with ExitStack() as stack:
        sqlite_url, tmp = stack.enter_context(fresh_sqlite())
        url = stack.enter_context(fresh_postgres(args.database_url)) if args.database_url else sqlite_url
        imap = (
            stack.enter_context(DovecotServer())
            if args.server == "dovecot"
            else stack.enter_context(PymapServer(Path(tmp) / "imap"))
        )
        slack = stack.enter_context(SlackStandIn(channels=(CHANNEL,)))
        run, report, log = run_and_check(
            plan,
            slack=slack,
            imap=imap,
            database_url=url,
            workdir=Path(tmp) / "bot",
            drain_timeout=600 + plan.span,
        )
        backend = "PostgreSQL" if args.database_url else "SQLite"
        _print_report(plan, report, run, backend, args.server, log)
        print(
            report.as_json(
                benchmark="load",
                database=backend.lower(),
                imap=args.server,
                mails=plan.mails,
                speedup=plan.speedup,
                staff=plan.staff,
                team=plan.team,
                mails_per_hour=plan.rate,
                activity=plan.activity,
                think_s=plan.think if plan.team == "busy" else None,
                team_actions_planned=run.team_planned,
                team_actions_done=run.team_done,
                pace_ms=round(plan.pace * 1000, 2),
                arrival_seconds=round(run.span_seconds, 1),
                seconds=round(run.span_seconds + run.drain_seconds, 1),
                machine=machine(),
            )
        )
        ok = not report.problems and max(report.acks.p99, report.answers.p99) < TARGET_P99
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""A busy hour, compressed: mail arriving at 2,000 an hour while ten staff work tickets.

The same scenario as `benchmarks/bench_load.py` (tests/support/load.py), smaller and
faster. It asserts what load must never break: every mail one ticket or follow-up, none
lost or doubled, ticket posts in arrival order and never faster than Slack's pace (which
the speedup compresses like the arrivals), every reply mailed exactly once. Timings are
recorded but belong to the benchmark.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from tests.support.load import LoadPlan, logged_errors, run_and_check

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# x4: the pace is 250 ms, longer than the bot takes to deliver a post even on a busy
# machine, so posts queue behind it (the burst, the updates) and the pace is really tested.
PLAN = LoadPlan(mails=120, speedup=4, staff=10, managers=2, think=1.0, burst=20, seed=3)


def test_a_busy_hour_loses_doubles_and_reorders_nothing(
    imap: PymapServer, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    run, report, log = run_and_check(
        PLAN, slack=slack, imap=imap, database_url=database_url, workdir=tmp_path / "bot"
    )

    assert report.problems == [], "\n".join(report.problems)
    errors = logged_errors(log)
    assert not errors, "\n".join(errors[:5])
    new_mails = sum(1 for m in run.mails if m.parent is None)
    assert (report.tickets, report.follow_ups) == (new_mails, PLAN.mails - new_mails)
    assert report.follow_ups > 0
    # The staff really worked: every kind of action happened, replies went out.
    assert {"claim", "reply: send", "tag: save", "resolve", "/support open", "App Home: open"} <= set(
        report.by_kind
    )
    assert report.replies_sent > 0 and report.replies_mailed == report.replies_sent
    assert report.tightest_window >= 0.8
    print(report.as_json(test="load", mails=PLAN.mails, speedup=PLAN.speedup))

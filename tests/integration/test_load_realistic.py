"""A real team's hour, compressed: the realistic team of `benchmarks/bench_load.py --team
realistic` (tests/support/load.py, RealisticTeam), small and sped up.

It asserts what the benchmark's real-pace figures rest on: the team really works the
tickets (claims, replies, resolutions follow the tickets), and the load breaks nothing
(every mail one ticket or follow-up, posts in order and never faster than the pace, every
reply mailed once). Timings belong to the benchmark.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from tests.support.load import REALISTIC_FOLLOW_UP_DISTANCE, LoadPlan, logged_errors, run_and_check

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# x30: 40 mails arrive over 24 s, and a claim comes about 3 s after its ticket's post, so
# most tickets are claimed, answered and resolved before the mail stops.
PLAN = LoadPlan(
    mails=40,
    speedup=30,
    team="realistic",
    mails_per_hour=200,
    burst=0,
    follow_up_distance=REALISTIC_FOLLOW_UP_DISTANCE,
    seed=4,
)


def test_a_realistic_team_works_the_tickets_and_breaks_nothing(
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
    # The team planned every ticket's handling and did a good part of it: tickets were
    # claimed, answered and resolved.
    assert run.team_planned >= 3 * new_mails and run.team_done > 0
    assert {"claim", "reply: send", "resolve"} <= set(report.by_kind)
    assert report.replies_sent > 0 and report.replies_mailed == report.replies_sent
    assert report.new_posts.count == new_mails
    print(report.as_json(test="load-realistic", mails=PLAN.mails, speedup=PLAN.speedup))

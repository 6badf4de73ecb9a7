"""Failover: two `supportbot run` replicas on PostgreSQL; SIGKILL the leader, N times.

Reported per kill: seconds until the other replica's /healthz says it leads, and until a
mail appended right after the kill is posted at the Slack stand-in (the new leader has
started its watcher and outbox and caught up). The killed replica is started again as
the next follower. Runs on a private PostgreSQL cluster of its own (Debian's binaries;
as root, run as the `postgres` user), never on a shared server.

    .venv/bin/python -m benchmarks.bench_failover [KILLS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks._setup import machine, percentile
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from tests.support.harness import CHANNEL, BotProcess, bot_env, wait_until
from tests.support.mail import customer_mail
from tests.support.private_postgres import PrivatePostgres


def _posted(slack: SlackStandIn) -> int:
    return sum(
        1
        for m in slack.messages(CHANNEL)
        if (m.get("metadata") or {}).get("event_type") == "supportbot_ticket"
    )


def main(kills: int) -> None:
    takeovers: list[float] = []
    first_posts: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="sb-bench-failover-") as tmp,
        PrivatePostgres() as pg,
        PymapServer(Path(tmp) / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
    ):
        env = bot_env(slack_url=slack.base_url, imap=imap, database_url=pg.url)
        workdir = Path(tmp)
        replicas = [BotProcess(env, workdir, name=f"replica-{n}") for n in range(2)]
        try:
            for replica in replicas:
                replica.start()
            for round_no in range(kills):
                pair = list(replicas)
                wait_until(lambda: sum(r.is_leader() for r in pair) == 1, timeout=30, what="one leader")  # noqa: B023
                leader = next(r for r in replicas if r.is_leader())
                follower = next(r for r in replicas if r is not leader)
                before = _posted(slack)
                leader.kill()
                killed = time.monotonic()
                imap.append(customer_mail(round_no, subject=f"Failover {round_no}"))
                wait_until(follower.is_leader, timeout=30, what="the follower to lead")
                takeovers.append(time.monotonic() - killed)
                wait_until(lambda: _posted(slack) > before, timeout=30, what="the mail to be posted")  # noqa: B023
                first_posts.append(time.monotonic() - killed)
                print(f"kill {round_no + 1}: leads after {takeovers[-1]:.2f} s, ", end="")
                print(f"mail posted after {first_posts[-1]:.2f} s")
                replacement = BotProcess(env, workdir, name=f"replica-{round_no + 2}")
                replacement.start()
                replicas = [follower, replacement]
        finally:
            for replica in replicas:
                replica.kill()
    print(f"\nFailover over {kills} SIGKILLs of the leader ({machine()}):")
    for label, values in (
        ("takeover (the follower's /healthz says leader)", takeovers),
        ("first post of a mail sent at the kill", first_posts),
    ):
        print(f"  {label}: p50 {percentile(values, 50):.2f} s, max {max(values):.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

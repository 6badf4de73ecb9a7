"""Latency: APPEND to the IMAP server → `chat.postMessage` arriving at the Slack stand-in,
beside the floor: a bare IMAP IDLE client fetching the same kind of mail, measured the same
way in the same run.

Mails are appended one at a time, each a little over Slack's pace after the previous post, with the bot's
default pacing (1 message/s per channel) and IMAP IDLE, as in production.

    .venv/bin/python -m benchmarks.bench_ingest_latency [count] [pymap|dovecot]
"""

from __future__ import annotations

import sys
import time

from benchmarks._setup import (
    FLOOR_GAP_SECONDS,
    fresh_sqlite,
    idle_floor,
    machine,
    mail_server,
    print_against_floor,
)
from bot.sandbox.slack_api import SlackStandIn
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail


def main(count: int = 100, server: str = "pymap") -> None:
    with (
        fresh_sqlite() as (url, tmp),
        mail_server(server, tmp / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
    ):
        floor = idle_floor(imap, [customer_mail(10_000 + n, subject=f"Floor {n}") for n in range(count)])
        env = bot_env(slack_url=slack.base_url, imap=imap, database_url=url, SLACK_PACE_SECONDS="1.0")
        latencies: list[float] = []
        with running_bot(env) as bot:
            wait_until(lambda: bot.watcher is not None and bot.watcher.connected.is_set(), what="IMAP")
            time.sleep(0.5)  # let the watcher enter IDLE
            for n in range(count):
                before = len(slack.calls("chat.postMessage"))
                started = time.monotonic()
                imap.append(customer_mail(n, subject=f"Latency {n}"))
                calls = slack.wait_for("chat.postMessage", count=before + 1, timeout=30)
                posted = calls[before].at
                latencies.append(posted - started)
                # The next mail comes a little over Slack's pace after this post, as the floor's
                # comes after its fetch: the figure measures IDLE → ingest → outbox.
                time.sleep(max(0.0, posted + FLOOR_GAP_SECONDS - time.monotonic()))
    print_against_floor(
        f"ingest latency, APPEND -> chat.postMessage, {count} mails, {server}, IDLE, paced ({machine()})\n"
        "  floor: APPEND -> a bare IDLE client fetched it; target ours-floor: p50 < 100, p95 < 250 ms;"
        " polling peers: 30000-60000 ms",
        floor,
        latencies,
        (100, 250),
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100, sys.argv[2] if len(sys.argv) > 2 else "pymap")

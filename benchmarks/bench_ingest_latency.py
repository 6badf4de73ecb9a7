"""Latency: APPEND to the IMAP server → `chat.postMessage` arriving at the Slack stand-in.

Mails are appended one at a time, each a little over Slack's pace after the previous post, with the bot's
default pacing (1 message/s per channel) and IMAP IDLE, as in production.

    .venv/bin/python -m benchmarks.bench_ingest_latency [count]
"""

from __future__ import annotations

import sys
import time

from benchmarks._setup import fresh_sqlite, machine, percentile
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail


def main(count: int = 100) -> None:
    with (
        fresh_sqlite() as (url, tmp),
        PymapServer(tmp / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
    ):
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
                # The next mail comes a little over Slack's pace after this post, so the figure
                # measures IDLE → ingest → outbox, not the deliberate one-per-second pacing.
                time.sleep(max(0.0, posted + 1.1 - time.monotonic()))
    print(f"ingest latency, APPEND -> chat.postMessage, {count} mails, IDLE, paced ({machine()})")
    print(f"  p50 {percentile(latencies, 50) * 1000:7.0f} ms")
    print(
        f"  p95 {percentile(latencies, 95) * 1000:7.0f} ms   (target < 2000 ms; polling peers: 30000-60000)"
    )
    print(f"  max {max(latencies) * 1000:7.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)

"""Idle memory of `supportbot run`: resident set size after it settles with nothing to do.

.venv/bin/python -m benchmarks.bench_idle_memory
"""

from __future__ import annotations

import time

from benchmarks._setup import fresh_sqlite, machine
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from tests.support.harness import CHANNEL, BotProcess, bot_env, wait_until


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    with (
        fresh_sqlite() as (url, tmp),
        PymapServer(tmp / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
    ):
        bot = BotProcess(bot_env(slack_url=slack.base_url, imap=imap, database_url=url), tmp, name="idle")
        with bot:
            wait_until(bot.is_leader, what="leadership")
            time.sleep(10)
            assert bot.proc is not None
            samples = []
            for _ in range(5):
                samples.append(rss_mb(bot.proc.pid))
                time.sleep(1)
    print(f"idle supportbot run ({machine()})")
    print(f"  RSS {max(samples):6.1f} MB   (target < 150 MB)")


if __name__ == "__main__":
    main()

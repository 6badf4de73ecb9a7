"""Paging latency: an urgent mail's APPEND to the IMAP server → the page DM arriving at the
Slack stand-in for the person on call.

The bot runs as in production (IMAP IDLE, Slack pacing of one message per second per
channel) with its clock set to a weeknight, a published rota and one urgency rule. Mails
are appended one at a time, a little over Slack's pace after the previous page, so the
figure measures IDLE → ingest → triage → page → outbox, not the deliberate pacing. Beside
it, the floor: a bare IMAP IDLE client fetching the same kind of mail, measured the same way
in the same run.

    .venv/bin/python -m benchmarks.bench_page_latency [count] [pymap|dovecot]
"""

from __future__ import annotations

import sys
import time

from benchmarks._setup import (
    FLOOR_GAP_SECONDS,
    ON_CALL,
    fresh_sqlite,
    idle_floor,
    machine,
    mail_server,
    print_against_floor,
    publish_rota,
    tuesday_night_in_rome,
    urgency_rules,
    wait_for_idle,
)
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import transaction
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail


def main(count: int = 50, server: str = "pymap") -> None:
    with (
        fresh_sqlite() as (url, tmp),
        mail_server(server, tmp / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
    ):
        floor = idle_floor(imap, [customer_mail(10_000 + n, subject=f"Floor {n}") for n in range(count)])
        slack.add_user(ON_CALL, "ada", "Ada", channels=(CHANNEL,))
        rules = urgency_rules(tmp)
        clock = tuesday_night_in_rome()
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=url,
            URGENCY_RULES_FILE=str(rules),
            SLACK_PACE_SECONDS="1.0",  # as in production
        )
        latencies: list[float] = []
        with running_bot(env, clock=clock) as bot:
            with transaction(bot.factory) as session:
                publish_rota(session, bot, clock)
            wait_for_idle(bot)

            def pages() -> list[float]:
                dm = slack.dm_channels.get(ON_CALL)
                return [
                    call.at
                    for call in slack.calls("chat.postMessage")
                    if call.args.get("channel") in (ON_CALL, dm)
                    and "Urgent ticket" in str(call.args.get("text"))
                ]

            for n in range(count):
                before = len(pages())
                started = time.monotonic()
                imap.append(customer_mail(n, subject=f"Outage in region {n}"))
                paged_at = wait_until(
                    lambda b=before: len(pages()) > b and pages()[b], timeout=30, what="page"
                )
                latencies.append(paged_at - started)
                time.sleep(max(0.0, paged_at + FLOOR_GAP_SECONDS - time.monotonic()))
    print_against_floor(
        f"paging latency, APPEND -> page DM at Slack, {count} urgent mails, {server}, IDLE ({machine()})\n"
        "  floor: APPEND -> a bare IDLE client fetched it; target ours-floor: p50 < 100, p95 < 250 ms",
        floor,
        latencies,
        (100, 250),
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50, sys.argv[2] if len(sys.argv) > 2 else "pymap")

"""Phone paging latency: an urgent mail's APPEND to the IMAP server → the call requested at
the Twilio stand-in for the person on call, with a policy that calls at once.

The bot runs as in production (IMAP IDLE, the phone outbox worker, the real `twilio`
client) with its clock set to a weeknight, a published rota, one urgency rule and
`PAGE_POLICY=oncall: call; managers: slack`. Mails are appended one at a time, each once the
previous call was requested. Target: p95 < 3 s.

    .venv/bin/python -m benchmarks.bench_phone_page [count]
"""

from __future__ import annotations

import sys
import time

from benchmarks._setup import (
    ON_CALL,
    fresh_sqlite,
    machine,
    mail_server,
    percentile,
    publish_rota,
    tuesday_night_in_rome,
    urgency_rules,
    wait_for_idle,
)
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import transaction
from bot.storage.models_phone import Phone
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.twilio_stand_in import TwilioStandIn

NUMBER = "+393331111111"


def main(count: int = 20) -> None:
    with (
        fresh_sqlite() as (url, tmp),
        mail_server("pymap", tmp / "imap") as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
        TwilioStandIn() as twilio,
    ):
        slack.add_user(ON_CALL, "ada", "Ada", channels=(CHANNEL,))
        rules = urgency_rules(tmp)
        clock = tuesday_night_in_rome()
        env = bot_env(
            slack_url=slack.base_url,
            imap=imap,
            database_url=url,
            URGENCY_RULES_FILE=str(rules),
            SLACK_PACE_SECONDS="1.0",
            PAGE_POLICY="oncall: call; managers: slack",
            **twilio.env(),
        )
        latencies: list[float] = []
        with running_bot(env, clock=clock) as bot:
            with transaction(bot.factory) as session:
                publish_rota(session, bot, clock)
                session.add(
                    Phone(
                        user_id=ON_CALL,
                        number=NUMBER,
                        confirmed_at=clock.now(),
                        code_attempts=0,
                        codes_sent=0,
                    )
                )
            wait_for_idle(bot)
            for n in range(count):
                before = len(twilio.calls(NUMBER))
                started = time.time()
                imap.append(customer_mail(n, subject=f"Outage in region {n}"))
                calls = wait_until(
                    lambda b=before: len(found := twilio.calls(NUMBER)) > b and found, timeout=30, what="call"
                )
                newest = max(call.created for call in calls)
                latencies.append(newest.timestamp() - started)
    print(f"phone paging latency, APPEND -> call requested at Twilio, {count} urgent mails ({machine()})")
    print(f"  p50 {percentile(latencies, 50) * 1000:6.0f} ms")
    print(f"  p95 {percentile(latencies, 95) * 1000:6.0f} ms   target < 3000 ms")
    print(f"  max {max(latencies) * 1000:6.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)

"""A channel's pace against the Slack stand-in: a quiet channel's first post goes at once,
a burst goes a few at once and then one per pace (the token bucket: bot/outbox/pacing.py).

The pace here is longer than Slack's second, so that "at once" and "a pace later" stay
apart on a busy machine; the bucket is the same at any pace."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import FrozenClock
from bot.outbox.pacing import LANE_BURST
from bot.outbox.queue import enqueue_post, notify_workers
from bot.outbox.worker import OutboxWorker
from bot.sandbox.slack_api import SlackStandIn
from bot.slack.delivery import slack_handlers
from bot.storage.db import transaction
from tests.support.harness import CHANNEL

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PACE = 2.5


def test_a_quiet_channels_first_post_goes_at_once_and_a_burst_is_paced(
    session_factory: sessionmaker[Session], slack: SlackStandIn
) -> None:
    assert LANE_BURST == 3
    worker = OutboxWorker(
        session_factory,
        slack_handlers(WebClient(token="xoxb-test-token", base_url=slack.base_url), session_factory),
        lane_prefix="slack:",
        clock=FrozenClock(START),
        pace_seconds=PACE,
        poll_seconds=0.05,
    )
    worker.start()
    try:
        queued = time.monotonic()
        with transaction(session_factory) as session:
            enqueue_post(session, CHANNEL, "alone", now=START)
        notify_workers()
        [first] = slack.wait_for("chat.postMessage", count=1, timeout=5)
        assert first.at - queued < PACE  # at once, not after a pace

        time.sleep(PACE + 0.2)  # quiet again: the bucket is full
        with transaction(session_factory) as session:
            for n in range(6):
                enqueue_post(session, CHANNEL, f"burst {n}", now=START)
        burst_queued = time.monotonic()
        notify_workers()
        calls = slack.wait_for("chat.postMessage", count=7, timeout=30)[1:]
    finally:
        worker.stop()
    at = [c.at - burst_queued for c in calls]
    assert [c.args["text"] for c in calls] == [f"burst {n}" for n in range(6)]
    assert at[2] < PACE  # three at once, before the bucket could have earned a fourth
    # Then one a pace, counted from the tries (a post reaches Slack after its try starts).
    assert [at[n] >= (n - 2) * PACE for n in range(3, 6)] == [True] * 3

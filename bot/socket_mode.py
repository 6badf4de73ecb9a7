"""Socket Mode's replay guard: a request Slack delivers twice is handled once.

Over HTTP, `bot.web.SlackGate` refuses a signature it has already accepted. Over Socket Mode
nothing is signed, and Slack sends an event again (`retry_attempt` 1, 2, 3: at once, after a
minute, after five) whenever the first acknowledgement did not reach it in time: a socket
recycled mid-request, a busy replica. The payload is the same each time, so its identity
(the event's `event_id`; for a command or an interaction, its one-time `trigger_id`) is
recorded in the same table as the signatures, shared by all replicas, and a second
delivery is acknowledged without running any listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt import BoltResponse
from sqlalchemy.orm import Session, sessionmaker

from bot.storage.seen_signatures import SignatureBook

log = logging.getLogger(__name__)


def delivery_key(body: dict[str, Any]) -> str | None:
    """What identifies one request across Slack's redeliveries, or None (nothing to go by)."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"[:100]
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"[:100]
    return None


def first_delivery_only(factory: sessionmaker[Session]) -> Callable[..., BoltResponse | None]:
    """A Bolt middleware that lets each request through once, however often it is delivered."""

    deliveries = SignatureBook(factory)

    def middleware(body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
        key = delivery_key(body)
        if key is None:
            next()
            return None
        try:
            fresh = deliveries.first_time_seen(key, datetime.now(UTC))
        except Exception:
            # Not acknowledged, so Slack delivers it again later, when the database may be back.
            log.exception("cannot record a Socket Mode delivery; leaving it unacknowledged")
            return BoltResponse(status=503, body="")
        if not fresh:
            log.info("ignored a second delivery of %s", key.split(":", 1)[0])
            return BoltResponse(status=200, body="")
        next()
        return None

    return middleware

"""Twilio webhooks already acted on: a keypress (CallSid + key) or an inbound SMS (MessageSid).

Twilio's signature carries no timestamp, so a captured request stays valid; its key is kept
here and the same request again is refused. A week is ample: by then its page is long over,
and a keypress or SMS answer for a page that is over changes nothing anyway.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.storage.models_phone import TwilioWebhookSeen

RETENTION = timedelta(days=7)


def first_time(session: Session, key: str, now: datetime) -> bool:
    """Record `key`; False when it was already recorded (the request is a replay)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(TwilioWebhookSeen)
        .values(key=key[:80], seen_at=now)
        .on_conflict_do_nothing(index_elements=[TwilioWebhookSeen.key])
        .returning(TwilioWebhookSeen.key)
    )
    return session.execute(statement).first() is not None


def purge_seen_twilio_webhooks(session: Session, now: datetime) -> int:
    removed = session.execute(delete(TwilioWebhookSeen).where(TwilioWebhookSeen.seen_at < now - RETENTION))
    return int(removed.rowcount or 0)

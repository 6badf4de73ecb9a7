"""Slack request signatures already accepted: the memory that makes a replayed request fail.

Slack signs `v0:{timestamp}:{body}`, and a request is fresh for five minutes either side
of its timestamp, so one signature identifies one request for as long as it could be
accepted. Remembering signatures for twice that window is enough.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.storage.models import SeenSignature

# Slack's freshness window is ±5 minutes around the request's timestamp: a signature
# first seen at the window's early edge stays acceptable for up to ten minutes.
SIGNATURE_WINDOW = timedelta(minutes=5)
RETENTION = 2 * SIGNATURE_WINDOW


def first_time_seen(session: Session, signature: str, now: datetime) -> bool:
    """Record `signature`; False when it was already recorded (the request is a replay).

    One atomic insert that does nothing on conflict: of two replicas given the same
    request at the same moment, the primary key lets exactly one through.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(SeenSignature)
        .values(signature=signature, seen_at=now)
        .on_conflict_do_nothing(index_elements=[SeenSignature.signature])
        # A row comes back only when it was inserted (rowcount is not reliable through the ORM).
        .returning(SeenSignature.signature)
    )
    return session.execute(statement).first() is not None


def purge_seen_signatures(session: Session, now: datetime) -> int:
    """Forget signatures too old to be accepted again anyway."""
    removed = session.execute(delete(SeenSignature).where(SeenSignature.seen_at < now - RETENTION)).rowcount
    return int(removed or 0)

"""The audit trail: every action on a ticket becomes an event (who, what, when)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.storage.models import Event

SYSTEM = "system"


def customer_actor(email: str) -> str:
    return f"customer:{email}"


def record_event(
    session: Session, *, ticket_id: int | None, actor: str, action: str, at: datetime, **data: Any
) -> Event:
    event = Event(ticket_id=ticket_id, actor=actor, action=action, at=at, data=data)
    session.add(event)
    return event

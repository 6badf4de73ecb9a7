"""Race-free named counters (ticket numbers) that work on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from bot.storage.models import Counter

TICKET_NUMBER = "ticket_number"


def next_value(session: Session, name: str) -> int:
    # UPDATE … RETURNING takes the row lock, so concurrent callers serialise on it
    # instead of reading the same MAX()+1.
    value = session.execute(
        update(Counter).where(Counter.name == name).values(value=Counter.value + 1).returning(Counter.value)
    ).scalar_one_or_none()
    if value is None:
        session.execute(insert(Counter).values(name=name, value=1))
        return 1
    return int(value)

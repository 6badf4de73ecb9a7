"""Secrets the bot makes for itself once and keeps in the database, shared by every replica
(the survey links' key, the erasure salt)."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.storage.models import AppSecret


def app_secret(session: Session, name: str, *, create: bool = True) -> str | None:
    """The secret called `name`, made now if there is none and `create` (else None)."""
    row = session.get(AppSecret, name)
    if row is not None:
        return row.value
    if not create:
        return None
    value = secrets.token_hex(32)
    try:
        with session.begin_nested():
            session.add(AppSecret(name=name, value=value))
            session.flush()
    except IntegrityError:
        # Another replica made it at the same moment: theirs is the one to use.
        row = session.get(AppSecret, name)
        if row is None:
            raise
        return row.value
    return value

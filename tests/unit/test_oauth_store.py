"""Stored sign-ins: encrypted with TOKEN_ENCRYPTION_KEY, one row per mailbox, a wrong key named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.mail.oauth_store import TokenStore
from bot.mail.oauth_token import TokenError
from bot.storage.models_oauth import OAuthToken

SECRET = "1//refresh-token-that-opens-the-mailbox"


def test_stored_encrypted_replaced_in_place_and_refused_with_another_key(session_factory) -> None:
    clock = FrozenClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    key = Fernet.generate_key().decode()
    store = TokenStore(session_factory, key, "google", "help@example.com", clock)
    assert store.load() is None
    store.save(SECRET)
    clock.advance(timedelta(hours=1))
    store.save(SECRET + "-rotated")
    with session_factory() as session:
        rows = session.scalars(select(OAuthToken)).all()
    assert len(rows) == 1 and rows[0].updated_at == clock.now()
    assert SECRET.encode() not in rows[0].blob and b"refresh" not in rows[0].blob
    assert store.load() == SECRET + "-rotated"
    # Another mailbox, another row; another key cannot read this one.
    assert TokenStore(session_factory, key, "google", "other@example.com", clock).load() is None
    stranger = TokenStore(
        session_factory, Fernet.generate_key().decode(), "google", "help@example.com", clock
    )
    with pytest.raises(TokenError, match=r"TOKEN_ENCRYPTION_KEY.*supportbot auth google"):
        stranger.load()

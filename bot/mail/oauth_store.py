"""The mailbox's OAuth credentials in the database, encrypted with TOKEN_ENCRYPTION_KEY.

One row per (provider, account) in `oauth_tokens`; every replica reads the same row, so a
refresh token stored by `supportbot auth` on one machine serves them all, and a token one
replica refreshed is found by the others.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.mail.oauth_token import TokenError
from bot.storage.db import reading, transaction
from bot.storage.models_oauth import OAuthToken


class TokenStore:
    def __init__(
        self, factory: sessionmaker[Session], key: str, provider: str, account: str, clock: Clock
    ) -> None:
        self._factory = factory
        self._fernet = Fernet(key.encode())
        self._provider = provider
        self._account = account
        self._clock = clock

    def load(self) -> str | None:
        """The stored text, decrypted; None when nothing is stored yet."""
        with reading(self._factory) as session:
            row = session.get(OAuthToken, (self._provider, self._account))
            blob = row.blob if row is not None else None
        if blob is None:
            return None
        try:
            return self._fernet.decrypt(blob).decode()
        except InvalidToken:
            raise TokenError(
                f"The stored {self._provider} sign-in cannot be decrypted with TOKEN_ENCRYPTION_KEY: "
                f"set the key it was stored with, or run `supportbot auth {self._provider}` again"
            ) from None

    def save(self, text: str) -> None:
        blob = self._fernet.encrypt(text.encode())
        now: datetime = self._clock.now()
        with transaction(self._factory) as session:
            row = session.get(OAuthToken, (self._provider, self._account), with_for_update=True)
            if row is None:
                session.add(
                    OAuthToken(provider=self._provider, account=self._account, blob=blob, updated_at=now)
                )
            else:
                row.blob = blob
                row.updated_at = now

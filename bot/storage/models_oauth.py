"""Stored OAuth credentials for the mailbox: what `supportbot auth` obtained, encrypted at rest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, UTCDateTime


class OAuthToken(Base):
    """One provider's credentials for one mailbox, shared by every replica.

    `blob` is Fernet-encrypted with TOKEN_ENCRYPTION_KEY: msal's serialised token cache
    (Microsoft, device code) or the refresh token (Google, installed app). A database dump
    or backup alone gives no access to the mailbox.
    """

    __tablename__ = "oauth_tokens"
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

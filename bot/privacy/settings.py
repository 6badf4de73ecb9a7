"""How long customers' data is kept, and how an erasure reaches the mailbox."""

from __future__ import annotations

from dataclasses import dataclass

from bot.env_reader import EnvReader


@dataclass(frozen=True)
class PrivacySettings:
    retention_days: int | None = None  # None: keep forever


def load_privacy_settings(r: EnvReader) -> PrivacySettings:
    """Filled in by the data-protection work."""
    return PrivacySettings()

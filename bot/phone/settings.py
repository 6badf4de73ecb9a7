"""Phone pages through Twilio: off unless TWILIO_ACCOUNT_SID is set."""

from __future__ import annotations

from dataclasses import dataclass

from bot.env_reader import EnvReader


@dataclass(frozen=True)
class PhoneSettings:
    account_sid: str

    def secrets(self) -> list[str]:
        return []


def load_phone_settings(r: EnvReader) -> PhoneSettings | None:
    """None unless Twilio is configured (filled in by the phone work)."""
    return None

"""The one builder of valid `Settings` for tests that run no servers.

Nothing listens at these addresses; a test names every setting its assertions depend
on as an override, so a reader sees them beside the test.
"""

from __future__ import annotations

from bot.config import Settings, load_settings

CHANNEL = "C0SUPPORT"
SIGNING_SECRET = "test-signing-secret"
SUPPORT_ADDRESS = "support@example.com"


def make_settings(database_url: str, **overrides: str) -> Settings:
    return load_settings(
        env={
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": "secret",
            "SUPPORT_CHANNEL": CHANNEL,
            "DATABASE_URL": database_url,
            "IMAP_HOST": "127.0.0.1",
            "IMAP_USER": "support",
            "IMAP_PASSWORD": "imap-secret",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_SECURITY": "none",
            "SUPPORT_ADDRESS": SUPPORT_ADDRESS,
            **overrides,
        }
    )


def settings_for(database_url: str, **overrides: str) -> Settings:
    """`make_settings` for the rota and paging tests: a team in Rome with Italy's holidays."""
    return make_settings(database_url, **{"TIMEZONE": "Europe/Rome", "HOLIDAYS_COUNTRY": "IT", **overrides})

"""Which mode the settings start: no SLACK_BOT_TOKEN is the sandbox; a token is a real
deployment, where every missing setting still stops start-up with its name."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from bot.sandbox.team import CHANNEL, TEAM

REAL = {
    "SLACK_BOT_TOKEN": "xoxb-1-real",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "SUPPORT_CHANNEL": "C0REAL",
    "IMAP_HOST": "imap.example.com",
    "IMAP_USER": "help@example.com",
    "IMAP_PASSWORD": "imap-password-value",
    "SMTP_HOST": "smtp.example.com",
    "SUPPORT_ADDRESS": "help@example.com",
}


@pytest.mark.parametrize("token", [None, "", "   "])
def test_no_token_is_the_sandbox(token: str | None) -> None:
    env = {} if token is None else {"SLACK_BOT_TOKEN": token}
    s = load_settings(env)
    assert s.sandbox
    # No app token from the environment: the runner supplies one for its own stand-in.
    assert not s.socket_mode
    assert s.sandbox_transport == "socket"  # the page reaches the bot as it usually runs for real
    assert s.support_channel == CHANNEL
    assert s.managers == {m.id for m in TEAM if m.manager}
    assert s.imap_host == s.smtp_host == "127.0.0.1" and not s.imap_ssl
    assert s.database_url.endswith("supportbot-sandbox.sqlite3")


def test_the_sandbox_ignores_half_filled_real_settings() -> None:
    """A .env copied from .env.example and partly filled in must not point the sandbox at a
    real mailbox, a real database or Socket Mode."""
    s = load_settings(
        {
            "SLACK_APP_TOKEN": "xapp-1-half-done",
            "IMAP_HOST": "imap.example.com",
            "MAIL_AUTH": "microsoft",
            "DATABASE_URL": "postgresql://u@db/prod",
            "TIMEZONE": "Europe/Rome",
        }
    )
    assert s.sandbox and not s.socket_mode
    assert s.imap_host == "127.0.0.1" and s.mail_oauth is None
    assert s.database_url.startswith("sqlite:")
    assert str(s.timezone) == "Europe/Rome"  # the team's own settings still apply


@pytest.mark.parametrize(("given", "transport"), [("http", "http"), (" Socket ", "socket"), ("", "socket")])
def test_the_sandbox_transport_is_socket_mode_unless_http_is_asked_for(given: str, transport: str) -> None:
    assert load_settings({"SANDBOX_TRANSPORT": given}).sandbox_transport == transport


def test_a_wrong_sandbox_transport_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"SANDBOX_TRANSPORT": "carrier-pigeon"})
    assert str(info.value).startswith("SANDBOX_TRANSPORT must be socket or http")
    # A real deployment never reads it: a stale line in .env stops nothing.
    assert load_settings({**REAL, "SANDBOX_TRANSPORT": "carrier-pigeon"}).sandbox_transport == "socket"


def test_each_run_signs_with_its_own_secret() -> None:
    assert load_settings({}).slack_signing_secret != load_settings({}).slack_signing_secret
    assert len(load_settings({}).slack_signing_secret) >= 32


@pytest.mark.parametrize(
    "missing", ["SUPPORT_CHANNEL", "SLACK_SIGNING_SECRET", "IMAP_HOST", "IMAP_PASSWORD", "SMTP_HOST"]
)
def test_a_token_without_the_rest_is_an_error_naming_the_setting(missing: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({k: v for k, v in REAL.items() if k != missing})
    assert str(info.value).startswith(missing)


def test_a_complete_real_configuration_is_not_the_sandbox() -> None:
    s = load_settings(REAL)
    assert not s.sandbox
    assert s.support_channel == "C0REAL"

"""Start-up validation: a missing or malformed setting names itself, secrets stay hidden."""

from __future__ import annotations

import logging
import sys

import pytest

from bot.config import ConfigError, load_settings, redact_url
from bot.logs import RedactSecrets

BASE = {
    "SLACK_BOT_TOKEN": "xoxb-1-secret-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "SUPPORT_CHANNEL": "C0SUPPORT",
    "IMAP_HOST": "imap.example.com",
    "IMAP_USER": "help@example.com",
    "IMAP_PASSWORD": "imap-password-value",
    "SMTP_HOST": "smtp.example.com",
    "SUPPORT_ADDRESS": "Help@Example.com",
}


def test_minimal_settings_get_sensible_defaults() -> None:
    s = load_settings(BASE)
    assert s.imap_port == 993 and s.imap_ssl and s.imap_folder == "INBOX"
    assert s.smtp_security == "starttls" and s.smtp_port == 587
    assert s.database_url == "sqlite:///supportbot.sqlite3"
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.support_address == "help@example.com"
    assert not s.socket_mode


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_APP_TOKEN": "nope"}, "SLACK_APP_TOKEN"),
        ({"SUPPORT_CHANNEL": "#support"}, "SUPPORT_CHANNEL"),
        ({"IMAP_PORT": "abc"}, "IMAP_PORT"),
        ({"IMAP_PORT": "70000"}, "IMAP_PORT"),
        ({"IMAP_SSL": "maybe"}, "IMAP_SSL"),
        ({"IMAP_PASSWORD": ""}, "IMAP_PASSWORD"),
        ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY"),
        ({"SMTP_USER": "someone"}, "SMTP_PASSWORD"),
        ({"SUPPORT_ADDRESS": "not-an-address"}, "SUPPORT_ADDRESS"),
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE"),
        ({"HOLIDAYS_COUNTRY": "XX"}, "HOLIDAYS_COUNTRY"),
        ({"MANAGERS": "U123,bob"}, "MANAGERS"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"SLACK_API_URL": "slack.com"}, "SLACK_API_URL"),
    ],
)
def test_bad_setting_is_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **change})
    assert str(info.value).startswith(named)


def test_socket_mode_does_not_need_a_signing_secret() -> None:
    s = load_settings({**BASE, "SLACK_SIGNING_SECRET": "", "SLACK_APP_TOKEN": "xapp-1-abc"})
    assert s.socket_mode


def test_postgres_urls_get_the_psycopg_driver() -> None:
    s = load_settings({**BASE, "DATABASE_URL": "postgres://u:pw@db/x"})
    assert s.database_url == "postgresql+psycopg://u:pw@db/x"
    assert redact_url(s.database_url) == "postgresql+psycopg://u:***@db/x"


def test_secrets_never_appear_in_repr_or_redacted_view() -> None:
    s = load_settings({**BASE, "DATABASE_URL": "postgresql://u:dbpass@db/x"})
    shown = repr(s) + repr(s.redacted())
    for secret in ("xoxb-1-secret-token", "signing-secret-value", "imap-password-value", "dbpass"):
        assert secret not in shown


def test_log_filter_redacts_secrets_in_messages_and_tracebacks() -> None:
    record_filter = RedactSecrets(["xoxb-1-secret-token"])
    try:
        raise RuntimeError("token xoxb-1-secret-token refused")
    except RuntimeError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "using %s", ("xoxb-1-secret-token",), sys.exc_info()
        )
    record_filter.filter(record)
    assert "xoxb-1-secret-token" not in record.getMessage()
    assert "xoxb-1-secret-token" not in (record.exc_text or "")
    assert "***" in record.getMessage()

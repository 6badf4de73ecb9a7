"""Who and what the sandbox pretends to be: its workspace, its team, its mailbox.

`load_settings` reads `sandbox_settings()` when no SLACK_BOT_TOKEN is configured, so
the rest of the bot runs unchanged against the embedded stand-ins; the runner then
fills in the ports those stand-ins actually got.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from bot.env_reader import ConfigError, EnvReader

CHANNEL = "C0SUPPORT"
CHANNEL_NAME = "support"
SUPPORT_ADDRESS = "support@example.com"
IMAP_USER = "support@example.com"
# A throwaway mailbox on loopback that lives as long as one run; not a secret worth keeping.
IMAP_PASSWORD = "sandbox"
DATABASE_FILE = "supportbot-sandbox.sqlite3"


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    real_name: str
    title: str
    manager: bool = False
    tz: str = "Europe/Rome"


TEAM: tuple[Member, ...] = (
    Member("U0GIULIA", "giulia", "Giulia Romano", "Support manager", manager=True),
    Member("U0ADA", "ada", "Ada Byrne", "Support engineer", tz="Europe/Dublin"),
    Member("U0LUCA", "luca", "Luca Bianchi", "Support engineer"),
    Member("U0SAM", "sam", "Sam Okafor", "Support engineer", tz="Europe/London"),
)


def member(user_id: str) -> Member | None:
    return next((m for m in TEAM if m.id == user_id), None)


TRANSPORTS = ("socket", "http")


def sandbox_transport(r: EnvReader) -> str:
    """SANDBOX_TRANSPORT: how the page's commands and clicks reach the bot. Socket Mode by
    default, as a real deployment usually runs; `http` shows the signed-request path."""
    transport = r.text("SANDBOX_TRANSPORT", "socket").lower()
    if transport not in TRANSPORTS:
        raise ConfigError(f"SANDBOX_TRANSPORT must be socket or http, got {transport!r}")
    return transport


def sandbox_settings() -> dict[str, str]:
    """The settings a real deployment would take from its Slack app, mailbox and mail server.

    Ports are placeholders (1): the runner starts the stand-ins on free ports and puts
    the real ones in. The signing secret is new on every run, and requests from the
    sandbox page are signed with it exactly as Slack signs its own.
    """
    return {
        "SLACK_BOT_TOKEN": "xoxb-sandbox",
        "SLACK_SIGNING_SECRET": secrets.token_hex(20),
        "SLACK_APP_TOKEN": "",
        "SLACK_API_URL": "http://127.0.0.1:1/api/",
        "SUPPORT_CHANNEL": CHANNEL,
        "MANAGERS": ",".join(m.id for m in TEAM if m.manager),
        "STAFF_USERGROUP": "",
        "DATABASE_URL": f"sqlite:///{DATABASE_FILE}",
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": "1",
        "IMAP_SSL": "false",
        "IMAP_USER": IMAP_USER,
        "IMAP_PASSWORD": IMAP_PASSWORD,
        "MAIL_AUTH": "password",  # the embedded servers take passwords, whatever .env says
        "IMAP_FOLDER": "INBOX",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "1",
        "SMTP_SECURITY": "none",
        "SMTP_USER": "",
        "SMTP_PASSWORD": "",
        "SUPPORT_ADDRESS": SUPPORT_ADDRESS,
        "PUBLIC_URL": "",
    }

"""The app manifest asks for what the bot uses and no more: every scope has a Web API method
the code calls, every event subscribed is one the bot acts on, and building the Bolt app says
nothing misleading in the log."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import yaml
from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.app import make_bolt_app, make_services
from bot.clock import SystemClock
from bot.config import load_settings
from bot.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())

# Each scope and the client methods that need it (any one of them called is reason enough).
USES = {
    "channels:history": r"\.conversations_(history|replies)",
    "channels:join": r"\.conversations_join",
    "channels:read": r"\.conversations_(info|members)",
    "channels:manage": r"\.conversations_setTopic",
    "chat:write": r"\.chat_(postMessage|update|postEphemeral)",
    "commands": r"\bapp\.command\(",
    "dnd:read": r"\.dnd_info",
    "files:read": r'"file_input"',  # a file input's files are read from url_private
    "files:write": r"\.files_upload_v2",
    "groups:history": r"\.conversations_(history|replies)",
    "groups:read": r"\.conversations_(info|members)",
    "groups:write": r"\.conversations_setTopic",
    "im:history": r"\.conversations_(history|replies)",  # finding the bot's earlier DM before a retry
    "im:write": r"\.conversations_open",
    "reactions:write": r"\.reactions_(add|remove)",
    "usergroups:read": r"\.usergroups_(list|users_list)",
    "usergroups:write": r"\.usergroups_(create|update|users_update)",
    "users:read": r"\.users_(info|list)",
    "users:read.email": r"\.users_(list|info|lookupByEmail)",
}


def bot_source() -> str:
    return "\n".join(
        p.read_text()
        for folder in ("bot", "handlers", "rota")
        for p in (ROOT / folder).rglob("*.py")
        if "sandbox" not in p.parts
    )


def test_every_scope_is_used() -> None:
    source = bot_source()
    unused = [
        scope
        for scope in MANIFEST["oauth_config"]["scopes"]["bot"]
        if scope not in USES or not re.search(USES[scope], source)
    ]
    assert unused == [], (
        f"scopes the bot never uses (ask for fewer, or say in USES what needs them): {unused}"
    )


def test_direct_messages_to_the_bot_are_not_subscribed_and_cannot_be_written() -> None:
    # The bot answers nothing written to it in a DM (handlers/events.py reads only the
    # support channel's threads): subscribing would send every such message for nothing,
    # and an open Messages tab would invite people to write into a void.
    assert "message.im" not in MANIFEST["settings"]["event_subscriptions"]["bot_events"]
    assert MANIFEST["features"]["app_home"]["messages_tab_read_only_enabled"] is True


def test_building_the_app_warns_about_nothing(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1-test",
        "SLACK_APP_TOKEN": "xapp-1-test",
        "SUPPORT_CHANNEL": "C0SUPPORT",
        "IMAP_HOST": "imap.example.com",
        "IMAP_USER": "help@example.com",
        "IMAP_PASSWORD": "imap-password",
        "SMTP_HOST": "smtp.example.com",
        "SUPPORT_ADDRESS": "help@example.com",
    }
    # As in production, where the settings come from the environment and Bolt reads it too.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env)
    client = WebClient(token=settings.slack_bot_token, base_url="http://127.0.0.1:9/api/")
    caplog.set_level(logging.WARNING)
    make_bolt_app(*make_services(settings, session_factory, SystemClock(), client), Metrics())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []

"""What listeners and jobs are handed: plain values built once by the composition root
(bot/app.py). A leaf module: it imports no handler, so handlers can import it freely."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings


class DisplayNames(Protocol):
    """People's names as Slack shows them, cached (handlers.common.People)."""

    def name(self, user: str) -> str: ...


class ProtectedAddresses(Protocol):
    """Addresses spam handling may never block (handlers.spam.Protected)."""

    def addresses(self, wait: float = ...) -> frozenset[str]: ...


@dataclass
class Services:
    """What listeners and jobs may use: plain values, no globals.

    `names` and `protected` cache what only Slack knows; one of each is built by the
    composition root and shared by every request, so Slack is not asked per click.
    """

    settings: Settings
    factory: sessionmaker[Session]
    clock: Clock
    client: WebClient
    names: DisplayNames
    protected: ProtectedAddresses


def make_web_client(settings: Settings) -> WebClient:
    return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=15)

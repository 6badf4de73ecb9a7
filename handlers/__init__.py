"""Thin Slack listeners, one module per Slack surface, each with `register(app, services)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.app import Services


def register_all(app: App, services: Services) -> None:
    from handlers import actions

    actions.register(app, services)

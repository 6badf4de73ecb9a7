"""Thin Slack listeners, one module per Slack surface, each with a `register(app, …)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.app import Services


def register_all(app: App, services: Services) -> None:
    from handlers import actions, automation, commands, events, oncall, paging, views
    from handlers.access import Access
    from handlers.common import People

    access = Access(services)
    people = People(services.client)
    actions.register(app, services, access, people)
    views.register(app, services, access, people)
    commands.register(app, services, access)
    events.register(app, services, access)
    automation.register(app, services, access)
    oncall.register(app, services, access)
    paging.register(app, services, access)

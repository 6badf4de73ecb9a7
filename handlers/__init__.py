"""Thin Slack listeners, one module per Slack surface, each with a `register(app, …)`.

`register_all` is called by the composition root (bot/app.py), which builds what the
listeners share (services, access checks, the Slack name cache) and passes it in.
"""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services
from handlers import actions, automation, commands, events, oncall, paging, privacy, views
from handlers.access import Access
from handlers.common import People


def register_all(app: App, services: Services, access: Access, people: People) -> None:
    actions.register(app, services, access, people)
    views.register(app, services, access, people)
    commands.register(app, services, access)
    events.register(app, services, access)
    automation.register(app, services, access)
    oncall.register(app, services, access)
    paging.register(app, services, access)
    privacy.register(app, services, access)

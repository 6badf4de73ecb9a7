"""What a customer reads as the agent's name (`{{ agent_name }}` and the From line): the full
name of the agent's Slack profile, never a handle or nickname (docs/tickets.md)."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.sandbox.slack_api import SlackStandIn
from handlers.common import People


def test_agent_name_is_the_full_name_and_the_display_name_only_without_one() -> None:
    with SlackStandIn() as slack:
        slack.add_user("U0ADA", "ada", "Ada Lovelace")
        slack.add_user("U0BOB", "bob", "")
        with slack._lock:
            slack.users["U0ADA"]["profile"]["display_name"] = "ada.l 🌴"
            slack.users["U0BOB"]["real_name"] = ""
            slack.users["U0BOB"]["profile"].update(real_name="", display_name="Bob B.")
        people = People(WebClient(token="xoxb-test", base_url=slack.base_url))
        assert people.name("U0ADA") == "Ada Lovelace"
        assert people.name("U0BOB") == "Bob B."

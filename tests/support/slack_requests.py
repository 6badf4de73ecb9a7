"""Requests into the bot's real endpoint, shaped and signed the way Slack sends them.

The payload building lives in `bot/sandbox/slack_requests.py`, shared with the sandbox
page; here it gets the test suite's signing secret and support channel.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox import slack_requests as shared
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_requests import APP_ID, Answer
from tests.support.harness import CHANNEL, SIGNING_SECRET

__all__ = ["APP_ID", "Answer", "SlackUser", "signed_request"]


def signed_request(
    url: str,
    body: bytes,
    *,
    content_type: str,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> Answer:
    return shared.signed_request(url, body, content_type=content_type, secret=secret, timestamp=timestamp)


class SlackUser(shared.SlackUser):
    def __init__(
        self, bot_url: str, slack: SlackStandIn, user_id: str, name: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("secret", SIGNING_SECRET)
        kwargs.setdefault("channel", CHANNEL)
        super().__init__(bot_url, slack, user_id, name, **kwargs)

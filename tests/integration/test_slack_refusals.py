"""When Slack refuses the bot's answer to a click for a reason the person can act on, they are
told that reason and what to do, not "Sorry, that went wrong on our side": a modal opened after
its trigger_id expired (Slack allows 3 seconds), and a modal update refused with
`hash_conflict` because the modal changed meanwhile (two quick picks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import SupportBot
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from handlers.access import SORRY
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail
from tests.support.slack_requests import SlackUser

pytestmark = pytest.mark.timeout(120)

ADA = "U0ADA"


@pytest.fixture
def bot(imap: PymapServer, slack: SlackStandIn, database_url: str) -> Iterator[SupportBot]:
    slack.add_user(ADA, "ada", "Ada Staff", channels=(CHANNEL,))
    with running_bot(bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)) as running:
        yield running


def ticket_message(slack: SlackStandIn) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for m in slack.messages(CHANNEL):
            if (m.get("metadata") or {}).get("event_type") == "supportbot_ticket":
                return {**m, "channel": CHANNEL}
        return None

    return wait_until(find, what="the ticket in the channel")


def test_an_expired_trigger_and_a_hash_conflict_are_explained(
    bot: SupportBot, imap: PymapServer, slack: SlackStandIn
) -> None:
    imap.append(customer_mail(1, subject="Where is my order?"))
    ada = SlackUser(bot.url, slack, ADA)
    message = ticket_message(slack)

    slack.error_next("views.open", "expired_trigger_id")
    ada.click(message, "ticket_reply")
    told = wait_until(lambda: slack.ephemerals(ADA), what="an answer to the click")
    assert "3 seconds" in told[0]["text"] and "click again" in told[0]["text"]

    before = set(slack.views)
    ada.click(message, "ticket_reply")
    view_id = wait_until(lambda: list(set(slack.views) - before), what="the reply modal")[0]
    slack.error_next("views.update", "hash_conflict")
    ada.pick(view_id, "reply_template", "acknowledgement.en")
    # From a modal there is no channel to answer in: a DM.
    dm = wait_until(lambda: slack.dms(ADA), what="a DM about the refused update")
    assert "changed while your choice was being applied" in dm[0]["text"]

    said = [e["text"] for e in slack.ephemerals(ADA)] + [m["text"] for m in slack.dms(ADA)]
    assert not [text for text in said if SORRY in text]

"""The Slack stand-in behaves as Slack's reference says where the bot's design depends on it
(issue 15's findings), so tests against it cannot pass on behaviour real Slack lacks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient

from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_workspace import BOT_USER
from bot.slack.modals import split_text


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        standin.add_user("U0ADA", "ada", "Ada Lovelace")
        yield standin


def client(slack: SlackStandIn) -> WebClient:
    return WebClient(token="xoxb-test", base_url=slack.base_url)


def test_dnd_info_shows_a_manual_pause_only_to_the_person_themselves(slack: SlackStandIn) -> None:
    # docs.slack.dev/reference/methods/dnd.info: "All of the snooze_* properties will only be
    # visible if the user being queried is also the current user."
    slack.snooze("U0ADA", minutes=30)
    slack.snooze(BOT_USER, minutes=30)
    other = client(slack).dnd_info(user="U0ADA").data
    assert other["dnd_enabled"] is False
    assert not [key for key in other if key.startswith("snooze")]
    own = client(slack).dnd_info().data
    assert own["snooze_enabled"] is True and 0 < own["snooze_remaining"] <= 1800


def test_dnd_info_shows_anyone_s_schedule(slack: SlackStandIn) -> None:
    start, end = time.time() - 60, time.time() + 3600
    slack.schedule_dnd("U0ADA", start, end)
    answer = client(slack).dnd_info(user="U0ADA").data
    assert answer["dnd_enabled"] is True
    assert (answer["next_dnd_start_ts"], answer["next_dnd_end_ts"]) == (int(start), int(end))


REPLY_LIKE = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Reply"},
    "submit": {"type": "plain_text", "text": "Send"},
    "blocks": [
        {
            "type": "actions",
            "block_id": "template_pick",
            "elements": [
                {
                    "type": "static_select",
                    "action_id": "reply_template",
                    "options": [{"text": {"type": "plain_text", "text": "Hi"}, "value": "hi.en"}],
                }
            ],
        },
        {
            "type": "input",
            "block_id": "body",
            "label": {"type": "plain_text", "text": "Message"},
            "element": {"type": "plain_text_input", "action_id": "body"},
        },
    ],
}


def test_view_state_holds_actions_block_selects_too_and_errors_must_name_an_input(
    slack: SlackStandIn,
) -> None:
    from bot.sandbox.slack_requests import view_state

    state = view_state(REPLY_LIKE, {"template_pick": "hi.en", "body": "Hello"})
    assert list(state) == ["template_pick", "body"]
    assert state["template_pick"]["reply_template"]["selected_option"]["value"] == "hi.en"
    view = slack.store_view(REPLY_LIKE)
    refused = slack.check_submission_answer(
        view["id"], {"response_action": "errors", "errors": {"template_pick": "No"}}
    )
    assert refused and slack.invalid == [("view_submission", refused)]
    assert (
        slack.check_submission_answer(view["id"], {"response_action": "errors", "errors": {"body": "No"}})
        == []
    )


def test_a_bot_changes_a_user_group_only_where_everyone_may(slack: SlackStandIn) -> None:
    from slack_sdk.errors import SlackApiError

    slack.usergroups["S0ONCALL"] = {"id": "S0ONCALL", "handle": "oncall", "users": []}
    slack.everyone_manages_usergroups = False
    with pytest.raises(SlackApiError) as refused:
        client(slack).usergroups_users_update(usergroup="S0ONCALL", users="U0ADA")
    assert refused.value.response["error"] == "permission_denied"
    slack.everyone_manages_usergroups, slack.paid_plan = True, False
    with pytest.raises(SlackApiError) as free:
        client(slack).usergroups_users_update(usergroup="S0ONCALL", users="U0ADA")
    assert free.value.response["error"] == "plan_upgrade_required"


@pytest.mark.parametrize("element", [{"max_length": 3001}, {"initial_value": "x" * 3001}])
def test_a_text_box_over_3000_characters_is_refused(slack: SlackStandIn, element: dict) -> None:
    from slack_sdk.errors import SlackApiError

    view = {**REPLY_LIKE, "blocks": [dict(REPLY_LIKE["blocks"][1])]}
    view["blocks"][0]["element"] = {"type": "plain_text_input", "action_id": "body", **element}
    with pytest.raises(SlackApiError) as refused:
        client(slack).views_open(trigger_id=slack.issue_trigger("U0ADA"), view=view)
    assert refused.value.response["error"] == "invalid_arguments"


@settings(deadline=None)
@given(st.text(alphabet="ab \n", max_size=10_000), st.integers(min_value=20, max_value=3000))
def test_split_text_joins_back_exactly_and_fits(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert "".join(parts) == text
    assert all(len(part) <= limit for part in parts)
    assert all(parts) or parts == [""]

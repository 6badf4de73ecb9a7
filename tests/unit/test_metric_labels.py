"""Metric labels stay bounded: lanes of configured channels, everything else pooled."""

from __future__ import annotations

from bot.metrics import OTHER, lane_label, listener_id

CHANNELS = frozenset({"C0SUPPORT"})


def test_lanes_of_configured_channels_keep_their_name_and_the_rest_are_pooled() -> None:
    assert lane_label("slack:C0SUPPORT", CHANNELS) == "slack:C0SUPPORT"
    assert lane_label("slack:C0SUPPORT:updates", CHANNELS) == "slack:C0SUPPORT:updates"
    assert lane_label("files:C0SUPPORT", CHANNELS) == "files:C0SUPPORT"
    assert lane_label("smtp", CHANNELS) == "smtp"
    # One lane per person paged or told something: thousands over time, one label.
    assert {lane_label(f"slack:U{n:08d}", CHANNELS) for n in range(1000)} == {"dm"}
    assert lane_label("slack:D0DIRECT", CHANNELS) == "dm"
    assert lane_label("slack:C0ELSEWHERE", CHANNELS) == OTHER


def test_the_listener_id_is_the_action_view_or_command() -> None:
    assert (
        listener_id({"type": "block_actions", "actions": [{"action_id": "ticket_claim"}]}) == "ticket_claim"
    )
    assert listener_id({"type": "view_submission", "view": {"callback_id": "reply_modal"}}) == "reply_modal"
    assert listener_id({"command": "/support", "text": "stats"}) == "/support"
    assert listener_id({"type": "shortcut", "callback_id": "new_ticket"}) == "new_ticket"
    assert listener_id({"type": "event_callback", "event": {"type": "app_home_opened"}}) is None

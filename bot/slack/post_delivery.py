"""Outbox handlers for plain Slack effects: a pre-rendered post or DM, a channel's topic,
a user group's members."""

from __future__ import annotations

from typing import Any

from bot.slack.web_api import SlackHandler, call_slack
from bot.storage.models import OutboxItem


class PlainPostHandler(SlackHandler):
    """A pre-rendered post: payload holds channel, text, blocks and optionally thread_ts."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        return self.post_payload(item, dict(item.payload))

    def post_payload(self, item: OutboxItem, payload: dict[str, Any]) -> dict[str, Any]:
        channel = payload.pop("channel")
        if channel.startswith(("U", "W")):
            # A DM: history lookups (to find an earlier try) need the DM's own channel id.
            opened = call_slack(self.client.conversations_open, users=channel)
            channel = (opened.get("channel") or {}).get("id") or channel
        thread_ts = payload.get("thread_ts")
        if (adopted := self.earlier_post(channel, item, thread_ts=thread_ts)) is not None:
            return adopted
        metadata = {"event_type": "supportbot_notice", "event_payload": {"outbox_id": item.id}}
        data = self.post(channel, metadata=metadata, unfurl_links=False, **payload)
        return {"channel": data.get("channel", channel), "ts": data["ts"]}


class TopicHandler(SlackHandler):
    """Put "On call: …" first in a channel's topic, keeping the rest of what people wrote there.

    Setting the same topic twice is harmless, so retries are too.
    """

    PREFIX = "On call:"

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        channel, oncall = item.payload["channel"], item.payload["oncall"]
        current = call_slack(self.client.conversations_info, channel=channel)
        old = str(((current.get("channel") or {}).get("topic") or {}).get("value") or "")
        rest = [part for part in old.split(" | ") if part.strip() and not part.startswith(self.PREFIX)]
        topic = " | ".join([oncall, *rest])[:250]  # Slack's topic limit
        if topic == old:
            return {"channel": channel, "unchanged": True}
        call_slack(self.client.conversations_setTopic, channel=channel, topic=topic)
        return {"channel": channel, "topic": topic}


class UsergroupHandler(SlackHandler):
    """usergroups.users.update: the `@oncall` group becomes exactly these people."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        group, users = item.payload["usergroup"], list(item.payload["users"])
        if not users:
            # Slack refuses an empty group; leave the last holder in it rather than fail forever.
            return {"usergroup": group, "skipped": "nobody on call"}
        call_slack(self.client.usergroups_users_update, usergroup=group, users=",".join(users))
        return {"usergroup": group, "users": users}

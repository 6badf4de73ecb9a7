"""Outbox handlers for plain Slack effects: a pre-rendered post or DM, a channel's topic,
a user group's members."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox.queue import enqueue_post, notify_workers
from bot.outbox.worker import PermanentFailure
from bot.slack.web_api import SlackHandler, call_slack
from bot.storage.db import transaction
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


# What Slack answers when the workspace, not the request, is the problem: retrying cannot
# help, and only a person (an admin, or whoever runs the bot) can.
_USERGROUP_REFUSALS = {
    "permission_denied": (
        "Slack lets apps change a user group's members only when *everyone* may manage user groups. "
        "A workspace admin can allow it in *Tools & settings → Workspace settings → Permissions → "
        "User Groups*, or unset `ONCALL_USERGROUP` so I stop trying."
    ),
    "plan_upgrade_required": (
        "User groups need a paid Slack plan. Unset `ONCALL_USERGROUP` so I stop trying, or upgrade the plan."
    ),
    "no_such_subteam": (
        "That user group does not exist (any more). Set `ONCALL_USERGROUP` to an existing group's ID "
        "(`S…`), or unset it."
    ),
    "missing_scope": "The app lacks the `usergroups:write` scope: reinstall it from the manifest.",
}


class UsergroupHandler(SlackHandler):
    """usergroups.users.update: the `@oncall` group becomes exactly these people.

    When Slack refuses for a reason of the workspace's, the row is set aside (a retry
    cannot succeed) and the managers hear once, by DM, what to change."""

    def __init__(
        self, client: WebClient, factory: sessionmaker[Session], managers: Iterable[str] = ()
    ) -> None:
        super().__init__(client, factory)
        self.managers = tuple(sorted(managers))

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        group, users = item.payload["usergroup"], list(item.payload["users"])
        if not users:
            # Slack refuses an empty group; leave the last holder in it rather than fail forever.
            return {"usergroup": group, "skipped": "nobody on call"}
        try:
            call_slack(self.client.usergroups_users_update, usergroup=group, users=",".join(users))
        except PermanentFailure as exc:
            error = str(exc).removeprefix("Slack refused: ")
            if error in _USERGROUP_REFUSALS:
                self._tell_managers(group, error, item)
            raise
        return {"usergroup": group, "users": users}

    def _tell_managers(self, group: str, error: str, item: OutboxItem) -> None:
        text = (
            f":warning: I could not keep the on-call user group (`{group}`) up to date: "
            f"Slack answered `{error}`. {_USERGROUP_REFUSALS[error]} "
            "Until then, `/oncall` and the channel topic say who is on call."
        )
        with transaction(self.factory) as session:
            for manager in self.managers:
                # Once per group and reason, however many hand-overs fail the same way.
                enqueue_post(
                    session,
                    manager,
                    text,
                    now=item.created_at,
                    dedupe_key=f"usergroup-refused:{group}:{error}:{manager}",
                )
        notify_workers()

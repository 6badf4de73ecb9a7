"""Who may act: staff (members of the support channel, or of STAFF_USERGROUP) on tickets,
managers (MANAGERS) on templates and rota administration.

Each listener declares the permission it needs where it is registered
(`guarded("staff", listener)`); the check runs here, once, before the listener
body, and a refusal is always an ephemeral sentence that says why.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.slack.refusals import refusal_text
from handlers.common import fields_with_nul
from handlers.kept_fresh import KeptFresh

log = logging.getLogger(__name__)

Permission = Literal["anyone", "staff", "manager"]
_CACHE_SECONDS = 60.0
_FIRST_FETCH_SECONDS = 2.0
_RECHECK_AFTER_SECONDS = 0.0
_RECHECK_WAIT_SECONDS = 0.8
SORRY = "Sorry, that went wrong on our side; it is logged. Nothing was changed by this request."


class Access:
    def __init__(self, settings: Settings, client: WebClient) -> None:
        self.settings = settings
        self.client = client
        # Membership changes rarely; asking Slack on every click would hit rate limits, and
        # asking before acknowledging would make every click as slow as Slack.
        self._members = KeptFresh(lambda: frozenset(self._fetch()), _CACHE_SECONDS, "the staff list")

    def is_manager(self, user: str) -> bool:
        return user in self.settings.managers

    def is_staff(self, user: str) -> bool:
        if self.is_manager(user) or user in self._staff():
            return True
        # Not in the list we hold: they may have joined since it was read. Ask Slack again (one
        # call, shared by misses that come together) before refusing, within the ack's time.
        return user in (self._members.recheck(_RECHECK_AFTER_SECONDS, _RECHECK_WAIT_SECONDS) or frozenset())

    def allows(self, permission: Permission, user: str) -> bool:
        if permission == "manager":
            return self.is_manager(user)
        if permission == "staff":
            return self.is_staff(user)
        return True

    def refusal(self, permission: Permission) -> str:
        if permission == "manager":
            managers = ", ".join(f"<@{m}>" for m in sorted(self.settings.managers)) or "nobody yet"
            return f"Only managers can do that (managers: {managers})."
        where = (
            f"the <!subteam^{self.settings.staff_usergroup}> group"
            if self.settings.staff_usergroup
            else f"<#{self.settings.support_channel}>"
        )
        return f"Only support staff can work on tickets: ask to be added to {where}."

    def staff_ids(self) -> frozenset[str] | None:
        """The staff list as last read (the channel's or STAFF_USERGROUP's members); None if
        it could not be read yet."""
        return self._members.get(first_wait=_FIRST_FETCH_SECONDS)

    def warm(self) -> None:
        """Start reading the staff list now, so the first person to act does not wait for it."""
        self._members.get(first_wait=0)

    def forget(self) -> None:
        """Someone joined or left the channel: read the staff list again (in the background)."""
        self._members.forget()

    def _staff(self) -> frozenset[str]:
        # Only a process's very first check waits for Slack: one call, which nothing can
        # answer in its place; after that, a stale list is refreshed in the background.
        return self._members.get(first_wait=_FIRST_FETCH_SECONDS) or frozenset()

    def _fetch(self) -> set[str]:
        client = self.client
        group = self.settings.staff_usergroup
        if group:
            return set(client.usergroups_users_list(usergroup=group).get("users") or [])
        members: set[str] = set()
        cursor = None
        while True:
            response = client.conversations_members(
                channel=self.settings.support_channel, limit=1000, cursor=cursor
            )
            members.update(response.get("members") or [])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members


def acting_user(body: dict[str, Any]) -> str:
    """The user behind an interaction, a slash command or an event."""
    if isinstance(body.get("user"), dict):
        return str(body["user"].get("id") or "")
    event = body.get("event")
    return str(body.get("user_id") or (event.get("user") if isinstance(event, dict) else "") or "")


def guarded(access: Access, permission: Permission, listener: Callable[..., None]) -> Callable[..., None]:
    """Wrap a listener so it runs only for users holding `permission`, and a modal's
    listener only once no field holds a NUL (answered beside that field).

    Bolt injects arguments by name, so the wrapper asks for all it may need and
    passes on only what the listener's signature names.
    """
    wanted = set(inspect.signature(listener).parameters)

    def run(
        ack: Any,
        body: dict[str, Any],
        client: Any,
        context: Any,
        logger: Any,
    ) -> None:
        user = acting_user(body)
        if not access.allows(permission, user):
            refuse(ack, body, client, access.refusal(permission))
            return
        if body.get("type") == "view_submission" and (nul := fields_with_nul(body)):
            ack(response_action="errors", errors=nul)
            return
        available = {"ack": ack, "body": body, "client": client, "context": context, "logger": logger}
        try:
            listener(**{name: value for name, value in available.items() if name in wanted})
        except Exception as exc:
            # A payload we could not read (or a bug) must not leave Slack with a 500 and the
            # person with nothing: say so where they acted, and keep the traceback. When Slack
            # refused our answer for a reason the person can act on, say that instead.
            said = refusal_text(exc)
            if said is not None:
                log.warning("%s for %s: Slack refused the answer (%s)", run.__name__, user, exc)
            else:
                log.exception("%s failed for %s", run.__name__, user)
            if getattr(ack, "response", None) is None:
                refuse(ack, body, client, said or SORRY)
            else:
                tell(client, body, said or SORRY)

    run.__name__ = getattr(listener, "__name__", "listener")
    # Read by tests/integration/test_hostile_slack.py: every listener declares who may use it.
    run.permission = permission  # type: ignore[attr-defined]
    return run


def refuse(ack: Any, body: dict[str, Any], client: Any, text: str) -> None:
    """Say no, ephemerally, in the form each kind of request allows."""
    kind = body.get("type")
    if body.get("command"):
        ack(text=text)
        return
    if kind == "view_submission" and (errors := form_error(body, text)):
        ack(response_action="errors", errors=errors)
        return
    ack()
    tell(client, body, text)


def form_error(body: dict[str, Any], text: str) -> dict[str, str]:
    """`text` as a modal error, next to the view's first input block; {} when it has none.

    Slack shows errors only beside input blocks and refuses an answer naming any other
    block. `state.values` is no guide: it also holds the selects of actions blocks (the
    reply modal's template picker comes before its text box)."""
    view = body.get("view") if isinstance(body.get("view"), dict) else {}
    blocks = view.get("blocks") if isinstance(view.get("blocks"), list) else []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "input" and block.get("block_id"):
            return {str(block["block_id"]): text}
    return {}


def tell(client: Any, body: dict[str, Any], text: str) -> None:
    """An ephemeral answer to the person who acted, where they acted (a DM from a modal)."""
    user = acting_user(body)
    given, container = body.get("channel"), body.get("container")
    given = given if isinstance(given, dict) else {}
    container = container if isinstance(container, dict) else {}
    channel = given.get("id") or container.get("channel_id")
    thread_ts = container.get("thread_ts")
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        else:
            client.chat_postMessage(channel=user, text=text)
    except SlackApiError:
        log.exception("could not tell %s: %s", user, text)

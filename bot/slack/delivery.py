"""Outbox handlers that talk to Slack's Web API.

Posts carry message metadata naming their outbox row; when a row is tried a
second time (the first try may have reached Slack before a crash) the handler
first looks for that metadata in the channel or thread and adopts the post it
finds instead of posting again.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.mail.attachments import AttachmentPart, attachment_parts, is_decoration
from bot.outbox.queue import (
    SLACK_ATTACHMENT_UPLOAD,
    SLACK_DND_CHECK,
    SLACK_PAGE,
    SLACK_POST,
    SLACK_SET_TOPIC,
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_NOTICE,
    SLACK_TICKET_POST,
    SLACK_TICKET_REFRESH,
    SLACK_USERGROUP,
    enqueue,
    slack_lane,
)
from bot.outbox.worker import Handler, PermanentFailure, RetryLater
from bot.slack import render
from bot.storage.db import reading, transaction
from bot.storage.models import Attachment, Message, OutboxItem, Ticket
from bot.tickets.views import message_card, ticket_card

log = logging.getLogger(__name__)

# Errors Slack documents as temporary; everything else that is not ok is a bad request.
_TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
# How far back a retry looks for its own earlier post.
_LOOKBACK = timedelta(hours=1)
_LOOKUP_PAGES = 10


def call_slack(fn: Any, **kwargs: Any) -> dict[str, Any]:
    """Call one Web API method, translating failures into the outbox's two outcomes."""
    try:
        response = fn(**kwargs)
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        if status == 429 or error == "ratelimited":
            retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
            try:
                after = float(retry_after) if retry_after is not None else 1.0
            except ValueError:
                after = 1.0
            raise RetryLater(f"rate limited, Retry-After {after:g}s", after=after) from None
        if status >= 500 or error in _TRANSIENT:
            raise RetryLater(f"Slack answered {status} {error}".strip()) from None
        raise PermanentFailure(f"Slack refused: {error or status}") from None
    except (SlackClientError, OSError) as exc:  # network trouble: connection refused, timeout, DNS
        raise RetryLater(f"cannot reach Slack: {type(exc).__name__}: {exc}") from None
    return dict(response.data) if isinstance(response.data, dict) else {}


class _SlackHandler:
    def __init__(self, client: WebClient, factory: sessionmaker[Session]) -> None:
        self.client = client
        self.factory = factory

    def post(self, channel: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return call_slack(self.client.chat_postMessage, channel=channel, **kwargs)
        except PermanentFailure as exc:
            if "not_in_channel" not in str(exc):
                raise
        # A public channel the bot was never added to: join it, then post once more.
        call_slack(self.client.conversations_join, channel=channel)
        return call_slack(self.client.chat_postMessage, channel=channel, **kwargs)

    def find_posted(self, channel: str, item: OutboxItem, thread_ts: str | None = None) -> str | None:
        """The ts of a message this row already posted, if an earlier try got through."""
        for message in self._recent(channel, item, thread_ts):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if payload.get("outbox_id") == item.id:
                return str(message["ts"])
        return None

    def _recent(self, channel: str, item: OutboxItem, thread_ts: str | None) -> Iterator[dict[str, Any]]:
        oldest = f"{(item.created_at - _LOOKBACK).timestamp():.6f}"
        cursor: str | None = None
        for _ in range(_LOOKUP_PAGES):
            args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
            if cursor:
                args["cursor"] = cursor
            if thread_ts is not None:
                data = call_slack(self.client.conversations_replies, ts=thread_ts, **args)
            else:
                data = call_slack(self.client.conversations_history, oldest=oldest, **args)
            yield from data.get("messages", [])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        return None


class TicketPostHandler(_SlackHandler):
    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with reading(self.factory) as session:
            card = ticket_card(session, item.ticket_id or 0)
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel = ticket.slack_channel if ticket else None
        if card is None or not channel:
            raise PermanentFailure(f"ticket {item.ticket_id} no longer exists")
        if item.attempts > 1:
            ts = self.find_posted(channel, item)
            if ts is not None:
                log.info("ticket #%s was already posted (ts %s); not posting again", card.number, ts)
                return {"channel": channel, "ts": ts, "adopted": True}
        text, blocks = render.ticket_message(card)
        data = self.post(
            channel,
            text=text,
            blocks=blocks,
            metadata=render.ticket_metadata(card, item.id),
            unfurl_links=False,
        )
        return {"channel": data.get("channel", channel), "ts": data["ts"]}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        ticket = session.get(Ticket, item.ticket_id or 0)
        if ticket is not None:
            ticket.slack_channel = result["channel"]
            ticket.slack_ts = result["ts"]


class TicketRefreshHandler(_SlackHandler):
    def _post_on_its_way(self, ticket_id: int) -> bool:
        with reading(self.factory) as session:
            return (
                session.scalar(
                    select(OutboxItem.id).where(
                        OutboxItem.ticket_id == ticket_id,
                        OutboxItem.kind == SLACK_TICKET_POST,
                        OutboxItem.status == "pending",
                    )
                )
                is not None
            )

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with reading(self.factory) as session:
            card = ticket_card(session, item.ticket_id or 0)
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel, ts = (ticket.slack_channel, ticket.slack_ts) if ticket else (None, None)
        if card is None or not channel:
            raise PermanentFailure(f"ticket {item.ticket_id} no longer exists")
        if ts is None:
            if self._post_on_its_way(item.ticket_id or 0):
                # Edits have a lane of their own: this one may overtake the post it edits.
                # The post may already be rendered with older state, so wait for its ts.
                raise RetryLater("the ticket's message is not posted yet")
            # The post itself was set aside; nothing to update (it renders fresh state if revived).
            return {"skipped": "ticket message not posted"}
        text, blocks = render.ticket_message(card)
        # chat.update is idempotent: a repeat after a crash just writes the same state.
        call_slack(
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=text,
            blocks=blocks,
            metadata=render.ticket_metadata(card, item.id),
        )
        return {"channel": channel, "ts": ts}


class ThreadMessageHandler(_SlackHandler):
    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        message_id = int(item.payload["message_id"])
        with reading(self.factory) as session:
            card = message_card(session, message_id)
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel, parent = (ticket.slack_channel, ticket.slack_ts) if ticket else (None, None)
        if card is None or not channel:
            raise PermanentFailure(f"message {message_id} no longer exists")
        if parent is None:
            # Rows ahead in this lane post the ticket first; if that was set aside, wait for a person.
            raise RetryLater("the ticket's own message is not posted yet", after=30)
        if item.attempts > 1:
            ts = self.find_posted(channel, item, thread_ts=parent)
            if ts is not None:
                return {"channel": channel, "ts": ts, "adopted": True}
        text, blocks = render.thread_message(card)
        data = self.post(
            channel,
            thread_ts=parent,
            text=text,
            blocks=blocks,
            metadata=render.message_metadata(card, item.id),
            unfurl_links=False,
        )
        return {"channel": channel, "ts": data["ts"]}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        message = session.get(Message, int(item.payload["message_id"]))
        if message is not None:
            message.slack_ts = result["ts"]


class PlainPostHandler(_SlackHandler):
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
        if item.attempts > 1:
            ts = self.find_posted(channel, item, thread_ts=thread_ts)
            if ts is not None:
                return {"channel": channel, "ts": ts, "adopted": True}
        metadata = {"event_type": "supportbot_notice", "event_payload": {"outbox_id": item.id}}
        data = self.post(channel, metadata=metadata, unfurl_links=False, **payload)
        return {"channel": data.get("channel", channel), "ts": data["ts"]}


class TopicHandler(_SlackHandler):
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


class UsergroupHandler(_SlackHandler):
    """usergroups.users.update: the `@oncall` group becomes exactly these people."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        group, users = item.payload["usergroup"], list(item.payload["users"])
        if not users:
            # Slack refuses an empty group; leave the last holder in it rather than fail forever.
            return {"usergroup": group, "skipped": "nobody on call"}
        call_slack(self.client.usergroups_users_update, usergroup=group, users=",".join(users))
        return {"usergroup": group, "users": users}


class TicketNoticeHandler(_SlackHandler):
    """A short text in a ticket's thread (paging progress); waits until the ticket itself is posted."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with reading(self.factory) as session:
            ticket = session.get(Ticket, item.ticket_id or 0)
            channel, parent = (ticket.slack_channel, ticket.slack_ts) if ticket else (None, None)
        if not channel:
            raise PermanentFailure(f"ticket {item.ticket_id} no longer exists")
        if parent is None:
            raise RetryLater("the ticket's own message is not posted yet", after=5)
        if item.attempts > 1:
            ts = self.find_posted(channel, item, thread_ts=parent)
            if ts is not None:
                return {"channel": channel, "ts": ts, "adopted": True}
        metadata = {"event_type": "supportbot_notice", "event_payload": {"outbox_id": item.id}}
        data = self.post(channel, thread_ts=parent, text=item.payload["text"], metadata=metadata)
        return {"channel": channel, "ts": data["ts"]}


# -- customers' attachments ------------------------------------------------------------

_UNSAFE_IN_NAME = re.compile(r'[/\\:*?"<>|]')
_NAME_WS = re.compile(r"\s+")
UPLOAD_NAME_LIMIT = 200
UPLOAD_SETTLE_SECONDS = 10.0


def upload_filename(name: str, fallback: str = "attachment.bin", extension: str = "") -> str:
    """A file name from an email, made safe to hand to Slack and recognisable still.

    Control and format characters (NUL, line breaks, right-to-left overrides that make
    `gpj.exe` read as `exe.jpg`) are dropped, path separators and the characters no file
    system takes become `_` (so `<!channel>` is plain text wherever the name is shown),
    and a long name is cut in its middle, keeping its extension.
    """
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    name = _UNSAFE_IN_NAME.sub("_", name)
    name = _NAME_WS.sub(" ", name).strip(" .")
    if not name:
        return fallback
    if extension and not name.lower().endswith("." + extension.lower()):
        # The parser cut a long name before its extension; the file's type shows by it.
        name = name[: UPLOAD_NAME_LIMIT - len(extension) - 2].rstrip(" .") + "…." + extension
    if len(name) > UPLOAD_NAME_LIMIT:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= 16:
            name = stem[: UPLOAD_NAME_LIMIT - len(extension) - 2].rstrip(" .") + "…." + extension
        else:
            name = name[: UPLOAD_NAME_LIMIT - 1].rstrip(" .") + "…"
    return name


class AttachmentUploadHandler(_SlackHandler):
    """A customer's attachment, uploaded as a Slack file into the ticket's thread.

    The bytes are read back from the stored raw mail. A retry (the first try may have
    reached Slack before a crash or a 500) first looks in the thread for a file the bot
    already shared with the same name and size that no other attachment has claimed,
    and adopts it.
    """

    def __init__(self, client: WebClient, factory: sessionmaker[Session], settings: Settings | None) -> None:
        super().__init__(client, factory)
        limit_mb = settings.attachment_upload_max_mb if settings is not None else 20
        self.max_bytes = limit_mb * 1024 * 1024
        self.limit_mb = limit_mb
        self._bot_user: str | None = None
        # A mail's attachments are queued one after another: parse its raw source once.
        self._parsed: tuple[int, list[AttachmentPart]] | None = None

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        attachment_id = int(item.payload["attachment_id"])
        message_id = int(item.payload["message_id"])
        if self.max_bytes <= 0:
            return {"skipped": "uploads are off (ATTACHMENT_UPLOAD_MAX_MB=0)"}
        with reading(self.factory) as session:
            attachment = session.get(Attachment, attachment_id)
            ticket = session.get(Ticket, item.ticket_id or 0)
            message = session.execute(
                select(Message.slack_ts, Message.html).where(Message.id == message_id)
            ).one_or_none()
            if attachment is None or ticket is None or message is None or not ticket.slack_channel:
                return {"skipped": "the attachment no longer exists"}
            filename, size = attachment.filename, attachment.size
            index = session.scalar(
                select(func.count())
                .select_from(Attachment)
                .where(Attachment.message_id == message_id, Attachment.id < attachment_id)
            )
            channel, parent = ticket.slack_channel, ticket.slack_ts
            own_ts, html = message
        after_ticket = item.payload.get("after") == "ticket"
        if parent is None or not (after_ticket or own_ts is not None):
            if self._post_pending(item, message_id):
                # After the post that shows its message, as a customer would read them.
                raise RetryLater("the message's own post is not in Slack yet", after=2)
            # The post may have been recorded between the read above and that check (it sets
            # the ts in the commit that ends its row): only a second look tells it from a post
            # that was set aside, which never gets a ts.
            with reading(self.factory) as session:
                parent = session.scalar(select(Ticket.slack_ts).where(Ticket.id == item.ticket_id))
                own_ts = session.scalar(select(Message.slack_ts).where(Message.id == message_id))
            if parent is None or not (after_ticket or own_ts is not None):
                return {"skipped": "the message's post was set aside"}
        if size > self.max_bytes:
            why = f"is larger than the {self.limit_mb} MB upload limit, so it was not uploaded to Slack."
            return self._note(item, channel, parent, render.attachment_not_uploaded(filename, size, why))
        part = self._part(message_id, int(index or 0), filename, size)
        if part is None:
            return {"skipped": "not found in the stored mail"}
        if is_decoration(part, html):
            return {"skipped": "an inline picture of the HTML body (a logo)"}
        name = upload_filename(
            filename, fallback=f"attachment-{int(index or 0) + 1}.bin", extension=part.extension
        )
        if item.attempts > 1:
            adopted = self._find_shared(channel, parent, item, attachment_id, name, part.size)
            if adopted is not None:
                log.info(
                    "attachment %s was already uploaded as %s; not uploading again", attachment_id, adopted
                )
                return {"channel": channel, "file_id": adopted, "adopted": True}
        try:
            data = call_slack(
                self.client.files_upload_v2,
                channel=channel,
                thread_ts=parent,
                file=part.data,
                filename=name,
                title=name,
            )
        except RetryLater as exc:
            if exc.after is not None:
                raise  # Retry-After: Slack did nothing, and said when to come back
            # A 5xx or a lost answer may hide a finished upload, and Slack shares a file in
            # its thread a moment after completing it: look for it only once it can show.
            raise RetryLater(exc.reason, after=UPLOAD_SETTLE_SECONDS) from None
        uploaded = data.get("file") or next(iter(data.get("files") or []), {})
        return {"channel": channel, "file_id": str(uploaded.get("id") or "")}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        if result.get("file_id"):
            attachment = session.get(Attachment, int(item.payload["attachment_id"]))
            if attachment is not None:
                attachment.slack_file_id = str(result["file_id"])[:32]

    def _post_pending(self, item: OutboxItem, message_id: int) -> bool:
        with reading(self.factory) as session:
            return (
                session.scalar(
                    select(OutboxItem.id).where(
                        OutboxItem.status == "pending",
                        ((OutboxItem.kind == SLACK_TICKET_POST) & (OutboxItem.ticket_id == item.ticket_id))
                        | (OutboxItem.dedupe_key == f"thread-message:{message_id}"),
                    )
                )
                is not None
            )

    def _part(self, message_id: int, index: int, filename: str, size: int) -> AttachmentPart | None:
        if self._parsed is None or self._parsed[0] != message_id:
            self._parsed = None
            with reading(self.factory) as session:
                raw = session.scalar(select(Message.raw).where(Message.id == message_id))
            self._parsed = (message_id, attachment_parts(raw or b""))
        parts = self._parsed[1]
        # Found by position, checked by name and size; by those alone if the two ever disagree.
        candidates = [parts[index]] if index < len(parts) else []
        candidates += parts
        for part in candidates:
            if part.filename[:500] == filename and part.size == size:
                return part
        return None

    def _find_shared(
        self, channel: str, parent: str, item: OutboxItem, attachment_id: int, name: str, size: int
    ) -> str | None:
        if self._bot_user is None:
            self._bot_user = str(call_slack(self.client.auth_test).get("user_id") or "")
        found: list[str] = []
        for message in self._recent(channel, item, parent):
            for shared in message.get("files") or []:
                owner = shared.get("user") or message.get("user")
                if shared.get("name") == name and shared.get("size") == size and owner == self._bot_user:
                    found.append(str(shared.get("id")))
        if not found:
            return None
        with reading(self.factory) as session:
            claimed = set(
                session.scalars(
                    select(Attachment.slack_file_id).where(
                        Attachment.slack_file_id.in_(found), Attachment.id != attachment_id
                    )
                )
            )
        return next((file_id for file_id in found if file_id not in claimed), None)

    def _note(self, item: OutboxItem, channel: str, parent: str, text: str) -> dict[str, Any]:
        if item.attempts > 1:
            ts = self.find_posted(channel, item, thread_ts=parent)
            if ts is not None:
                return {"channel": channel, "note_ts": ts, "adopted": True}
        metadata = {"event_type": "supportbot_notice", "event_payload": {"outbox_id": item.id}}
        data = self.post(channel, thread_ts=parent, text=text, metadata=metadata, unfurl_links=False)
        return {"channel": channel, "note_ts": data["ts"]}


def attachment_refused(factory: sessionmaker[Session], clock: Clock) -> Callable[[OutboxItem, str], None]:
    """The Slack worker's `on_dead`: an upload Slack refused for good gets one note in its thread.

    The note is an outbox row of its own (posted once, after the ticket's post), so a
    refused file never holds up the uploads behind it.
    """

    def on_dead(item: OutboxItem, reason: str) -> None:
        if item.kind != SLACK_ATTACHMENT_UPLOAD:
            return
        with transaction(factory) as session:
            attachment = session.get(Attachment, int(item.payload.get("attachment_id") or 0))
            ticket = session.get(Ticket, item.ticket_id or 0)
            if attachment is None or ticket is None or not ticket.slack_channel:
                return
            why = f"could not be uploaded to Slack ({reason})."
            enqueue(
                session,
                kind=SLACK_TICKET_NOTICE,
                lane=slack_lane(ticket.slack_channel),
                now=clock.now(),
                payload={"text": render.attachment_not_uploaded(attachment.filename, attachment.size, why)},
                ticket_id=ticket.id,
                dedupe_key=f"attachment-refused:{attachment.id}",
            )
        from bot.outbox.queue import notify_workers

        notify_workers()

    return on_dead


def notifications_paused(client: WebClient, user: str, now: float | None = None) -> bool:
    """Whether Slack is holding back `user`'s notifications right now (snooze, or scheduled DND)."""
    data = call_slack(client.dnd_info, user=user)
    if data.get("snooze_enabled"):
        return True
    if not data.get("dnd_enabled"):
        return False
    start, end = data.get("next_dnd_start_ts"), data.get("next_dnd_end_ts")
    if start is None or end is None:
        return True
    moment = time.time() if now is None else now
    return float(start) <= moment < float(end)


class PageHandler(PlainPostHandler):
    """The page DM, then a look at the person's Do Not Disturb state to escalate sooner if paused."""

    def __init__(self, client: WebClient, factory: sessionmaker[Session], settings: Settings | None) -> None:
        super().__init__(client, factory)
        self.settings = settings

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        payload = item.payload
        fields = {k: payload[k] for k in ("channel", "text", "blocks") if k in payload}
        result = self.post_payload(item, fields)
        try:
            result["dnd"] = notifications_paused(self.client, payload["user"])
        except (RetryLater, PermanentFailure) as exc:
            # The page is out; not knowing about DND must not send it again.
            log.warning("could not read Do Not Disturb for %s: %s", payload["user"], exc)
            result["dnd"] = None
        return result

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        if result.get("dnd") is None or self.settings is None:
            return
        from bot.paging_jobs import dnd_notices
        from rota.paging import PagePolicy, record_dnd

        payload = item.payload
        escalated = record_dnd(
            session,
            int(payload["page_id"]),
            int(payload["step"]),
            payload["user"],
            dnd=bool(result["dnd"]),
            policy=PagePolicy.from_settings(self.settings),
        )
        if result["dnd"]:
            dnd_notices(session, int(payload["page_id"]), payload["user"], item.created_at, escalated)


class DndCheckHandler(_SlackHandler):
    """At duty start: if the new holder's notifications are paused, tell them and the managers."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        return {"paused": notifications_paused(self.client, item.payload["user"])}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        if not result.get("paused"):
            return
        from bot.outbox.queue import enqueue, slack_lane

        user = item.payload["user"]
        notices = {
            user: ":no_bell: You are on call, but your Slack notifications are paused (Do Not Disturb). "
            "Pages will not wake you: end Do Not Disturb, or allow notifications from this app "
            "(Preferences → Notifications).",
        }
        for manager in item.payload.get("managers") or []:
            notices[manager] = (
                f":no_bell: <@{user}> is on call with Slack notifications paused; pages may not wake them."
            )
        for target, text in notices.items():
            enqueue(
                session,
                kind=SLACK_POST,
                lane=slack_lane(target),
                now=item.created_at,
                payload={"channel": target, "text": text},
                dedupe_key=f"dnd-duty:{item.id}:{target}",
            )


def slack_handlers(
    client: WebClient, factory: sessionmaker[Session], settings: Settings | None = None
) -> dict[str, Handler]:
    return {
        SLACK_TICKET_NOTICE: TicketNoticeHandler(client, factory),
        SLACK_PAGE: PageHandler(client, factory, settings),
        SLACK_DND_CHECK: DndCheckHandler(client, factory),
        SLACK_SET_TOPIC: TopicHandler(client, factory),
        SLACK_USERGROUP: UsergroupHandler(client, factory),
        SLACK_TICKET_POST: TicketPostHandler(client, factory),
        SLACK_TICKET_REFRESH: TicketRefreshHandler(client, factory),
        SLACK_THREAD_MESSAGE: ThreadMessageHandler(client, factory),
        SLACK_POST: PlainPostHandler(client, factory),
        SLACK_ATTACHMENT_UPLOAD: AttachmentUploadHandler(client, factory, settings),
    }

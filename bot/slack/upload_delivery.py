"""Outbox handlers for customers' attachments: uploaded as Slack files into the ticket's
thread, and a note there for a file Slack refused."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.mail.attachments import AttachmentPart, attachment_parts, is_decoration
from bot.outbox.queue import (
    SLACK_ATTACHMENT_UPLOAD,
    SLACK_TICKET_NOTICE,
    SLACK_TICKET_POST,
    enqueue,
    notify_workers,
    slack_lane,
)
from bot.outbox.worker import RetryLater
from bot.slack import render
from bot.slack.web_api import SlackHandler, call_slack
from bot.storage.db import reading, transaction
from bot.storage.models import Attachment, Message, OutboxItem, Ticket

log = logging.getLogger(__name__)


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


class AttachmentUploadHandler(SlackHandler):
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
        notify_workers()

    return on_dead

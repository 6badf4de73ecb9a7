"""Writing effects into the outbox, inside the caller's transaction.

Nothing here talks to the outside world: a row is the promise that a worker
will deliver the effect after the transaction that wrote it commits.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Attachment, OutboxItem

# Kinds (delivery code in bot/slack/delivery.py and bot/mail/sender.py).
SLACK_TICKET_POST = "slack.ticket_post"  # the ticket's channel message, rendered at delivery
SLACK_TICKET_REFRESH = "slack.ticket_refresh"  # chat.update of that message with current state
SLACK_THREAD_MESSAGE = "slack.thread_message"  # a stored message shown in the ticket's thread
SLACK_POST = "slack.post"  # a pre-rendered post (summaries, announcements)
SLACK_SET_TOPIC = "slack.set_topic"  # a channel's topic (who is on call)
SLACK_USERGROUP = "slack.usergroup_users"  # a user group's members (the @oncall group)
SLACK_TICKET_NOTICE = "slack.ticket_notice"  # a short text in a ticket's thread, posted once the ticket is
SLACK_PAGE = "slack.page"  # a page DM; delivery then reads the person's Do Not Disturb state
SLACK_PAGE_CLOSE = "slack.page_close"  # chat.update of one page DM once its page is over (who answered)
SLACK_DND_CHECK = (
    "slack.dnd_check"  # at duty start: warn the holder (and managers) if notifications are paused
)
SLACK_ATTACHMENT_UPLOAD = (
    "slack.attachment_upload"  # a customer's attachment, uploaded as a file into the ticket's thread
)
SLACK_CUSTOMER_EXPORT = (
    "slack.customer_export"  # a customer's data as a ZIP, built at delivery, uploaded to a manager's DM
)
SMTP_SEND = "smtp.send"  # an outgoing reply (a stored Message), sent by bot/mail/sender.py
# An erasure's effects (bot/privacy/erasure.py): a Slack message replaced by "erased on request",
# a Slack file deleted, the customer's mail flagged (or deleted) in the mailbox.
SLACK_ERASE_MESSAGE = "slack.erase_message"
SLACK_DELETE_FILE = "slack.delete_file"
IMAP_ERASE = "imap.erase"
IMAP_LANE_PREFIX = "imap:"
PHONE_CALL = "phone.call"  # a voice call through Twilio (bot/phone/delivery.py)
PHONE_SMS = "phone.sms"  # an SMS through Twilio (bot/phone/delivery.py)
PHONE_CANCEL = "phone.cancel"  # a page's call still queued or ringing once the page is over
PHONE_LANE_PREFIX = "phone:"


def phone_lane(number: str) -> str:
    """One lane per phone number: its calls and texts go in order, one at a time."""
    return PHONE_LANE_PREFIX + number


def slack_lane(channel: str) -> str:
    return f"slack:{channel}"


def update_lane(lane: str) -> str:
    """The lane for edits of a channel's messages (`chat.update`), beside its posts.

    Slack's one-message-a-second limit is on posting to a channel; edits have a limit
    of their own. In the channel's lane, each claim, tag or resolve of a busy hour queued
    a card edit in front of the next new ticket, and new tickets reached Slack minutes
    late; in a lane of their own they are paced apart and hold up no post.
    """
    return f"{lane}:updates"


FILES_LANE_PREFIX = "files:"


def files_lane(lane: str) -> str:
    """The lane for a channel's attachment uploads (`lane` is the channel's own).

    An upload of many megabytes, or one waiting out Slack's Retry-After for file methods,
    must not hold up the next new ticket's post: uploads have a lane and a worker thread
    of their own (the Slack worker would otherwise sit in a long upload while posts wait).
    All of a channel's uploads share one lane, so a ticket's files still reach its thread
    in the order they came; each waits for its own message's post, which the channel's
    lane delivers in that order too.
    """
    return FILES_LANE_PREFIX + lane.removeprefix("slack:")


# Attachments of one mail uploaded into Slack at most; the card lists them all, and the
# rest stay in the mailbox (a mail of 2,000 parts must not become 2,000 files in a thread).
MAX_UPLOADS_PER_MESSAGE = 20


def enqueue_attachment_uploads(
    session: Session, *, ticket_id: int, message_id: int, channel: str, opens_ticket: bool, now: datetime
) -> None:
    """Queue the uploads of a stored mail's attachments not yet in Slack, in part order.

    Ingestion queues its batches' uploads in bulk, with the same rows and keys; this is for
    mail shown later (a spam ticket restored), so a key already queued is not queued again.
    """
    attachments = session.scalars(
        select(Attachment.id)
        .where(Attachment.message_id == message_id, Attachment.slack_file_id.is_(None))
        .order_by(Attachment.id)
        .limit(MAX_UPLOADS_PER_MESSAGE)
    ).all()
    for attachment_id in attachments:
        enqueue(
            session,
            kind=SLACK_ATTACHMENT_UPLOAD,
            lane=files_lane(slack_lane(channel)),
            now=now,
            payload=upload_payload(attachment_id, message_id, opens_ticket=opens_ticket),
            ticket_id=ticket_id,
            dedupe_key=upload_key(attachment_id),
        )


def upload_payload(attachment_id: int, message_id: int, *, opens_ticket: bool) -> dict[str, Any]:
    # "after": which post shows the mail, and must be in Slack before its files.
    return {
        "attachment_id": attachment_id,
        "message_id": message_id,
        "after": "ticket" if opens_ticket else "message",
    }


def upload_key(attachment_id: int) -> str:
    return f"attachment-upload:{attachment_id}"


# One event per worker: a single shared event would be cleared by whichever worker woke
# first, and the others would sleep through the news. Beside each, the lane prefix its
# worker delivers (None: it wants to hear of every commit, as triage does).
_listeners: dict[threading.Event, str | None] = {}
_listeners_lock = threading.Lock()


def notify_workers(lanes: Collection[str] | None = None, *, besides: threading.Event | None = None) -> None:
    """Tell in-process workers that new rows were committed (saves a poll interval).

    With `lanes` (lanes or lane prefixes: "slack:" is any channel's), only the outbox workers
    delivering one of them are woken, and those that hear of every commit. Ingestion's commit
    writes Slack rows only, and waking the SMTP, IMAP and upload workers too put three empty
    passes on the CPU (and the GIL) just as the Slack worker began the post. A worker not
    woken still finds rows at its next poll. `besides`: the caller's own event, so a worker's
    own commit does not wake it for nothing.
    """
    with _listeners_lock:
        for event, prefix in _listeners.items():
            if event is besides:
                continue
            if prefix is None or lanes is None or any(lane.startswith(prefix) for lane in lanes):
                event.set()


def work_signal(lane_prefix: str | None = None) -> threading.Event:
    """An event set whenever rows are committed (for `lane_prefix`'s lanes, when given);
    the worker clears it after waking."""
    event = threading.Event()
    with _listeners_lock:
        _listeners[event] = lane_prefix
    return event


def drop_work_signal(event: threading.Event) -> None:
    with _listeners_lock:
        _listeners.pop(event, None)


class SignalledWorker:
    """A daemon thread running `run` until `stop`; its work signal wakes it as soon as rows
    are committed (for its lanes, if it delivers `lane_prefix`'s), and `stop` sets it too,
    so a worker asleep until its next poll ends at once."""

    thread_name = "worker"

    def __init__(self, lane_prefix: str | None = None) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signal = work_signal(lane_prefix)

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._signal.set()
        if self._thread is not None:
            self._thread.join(timeout)
        drop_work_signal(self._signal)


def enqueue(
    session: Session,
    *,
    kind: str,
    lane: str,
    now: datetime,
    payload: dict[str, Any] | None = None,
    ticket_id: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxItem | None:
    """Add an effect; returns None when `dedupe_key` was already queued."""
    if dedupe_key is not None:
        existing = session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == dedupe_key))
        if existing is not None:
            return None
    item = OutboxItem(
        kind=kind,
        lane=lane,
        payload=payload or {},
        ticket_id=ticket_id,
        dedupe_key=dedupe_key,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        result={},
    )
    session.add(item)
    session.flush()
    session.info.setdefault(QUEUED_LANES, set()).add(lane)
    return item


# Where a session notes the lanes it queued rows for, so whoever commits it can wake just
# their workers (`OutboxWorker` after a handler's record).
QUEUED_LANES = "supportbot.queued_lanes"


def enqueue_post(
    session: Session,
    channel: str,
    text: str,
    *,
    now: datetime,
    blocks: list[Any] | None = None,
    dedupe_key: str | None = None,
) -> OutboxItem | None:
    """A channel post, or a DM when `channel` is a user id (delivery opens the DM)."""
    payload: dict[str, Any] = {"channel": channel, "text": text}
    if blocks:
        payload["blocks"] = blocks
    return enqueue(
        session, kind=SLACK_POST, lane=slack_lane(channel), now=now, payload=payload, dedupe_key=dedupe_key
    )


def enqueue_ticket_refresh(session: Session, *, ticket_id: int, lane: str, now: datetime) -> None:
    """Queue an update of the ticket's channel message, coalescing with one already waiting.

    Refreshes render the ticket's state at delivery time, so one pending refresh
    already covers any change made after it was queued.
    """
    waiting = session.scalar(
        select(OutboxItem.id).where(
            OutboxItem.ticket_id == ticket_id,
            OutboxItem.kind.in_([SLACK_TICKET_REFRESH, SLACK_TICKET_POST]),
            OutboxItem.status == "pending",
            OutboxItem.attempts == 0,
        )
    )
    if waiting is None:
        enqueue(session, kind=SLACK_TICKET_REFRESH, lane=update_lane(lane), now=now, ticket_id=ticket_id)

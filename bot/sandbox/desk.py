"""The sandbox page's server side: what one sandbox user sees, and what they do.

Every action becomes the request real Slack would send: an envelope over the Socket Mode
stand-in's WebSocket, acknowledged by the bot (`SocketUser`), or over HTTP signed, to the
bot's own `/slack/events` (`SlackUser`); what the bot does in return lands in the Slack stand-in,
which `state()` reads back. Mail goes in through IMAP APPEND to the embedded mailbox
and comes out of the SMTP catcher, so nothing here takes a shortcut into the bot.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from bot.clock import OffsetClock
from bot.config import Settings
from bot.mail.attachments import image_dimensions
from bot.sandbox.imap_server import MailboxOps
from bot.sandbox.seed import customer_email
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.slack_requests import NOT_ACKNOWLEDGED, Answer, SlackUser
from bot.sandbox.slack_workspace import BOT_USER
from bot.sandbox.smtp_catcher import CaughtMail, SmtpCatcher
from bot.sandbox.team import TEAM, member
from bot.slack.render import human_size

if TYPE_CHECKING:
    from bot.sandbox.socket_mode import SocketModeStandIn

log = logging.getLogger(__name__)

Json = dict[str, Any]

# Customer mail typed into the page; generous, but a page is not a way to fill a disk.
_MAX_FIELD = 20_000

# Files attached in the page's email form, all together; below ATTACHMENT_UPLOAD_MAX_MB's
# default, so what a newcomer attaches is what they see uploaded into the thread.
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 20
_MAX_FILENAME = 255
_MIME_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}")
TONIGHT = time(21, 0)
# Pictures the page shows inline, known by their first bytes: the declared type and the
# name are the sender's word, and a browser must never be handed HTML called a PNG.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


@dataclass(frozen=True)
class SharedFile:
    """A file shared in the Slack stand-in, as the page's download endpoint serves it."""

    id: str
    name: str
    data: bytes
    image_type: str | None  # the real type of a PNG, GIF or JPEG; None for anything else


class DeskError(ValueError):
    """A request the page should not have sent; the message says what was wrong."""


class SandboxDesk:
    def __init__(
        self,
        *,
        settings: Settings,
        slack: SlackStandIn,
        mailbox: MailboxOps,
        smtp: SmtpCatcher,
        clock: OffsetClock,
        bot_url: str,
        socket_mode: SocketModeStandIn | None = None,
    ) -> None:
        self.settings = settings
        self.slack = slack
        self.mailbox = mailbox
        self.smtp = smtp
        self.clock = clock
        self.bot_url = bot_url
        self.socket_mode = socket_mode
        self.channel = settings.support_channel
        self.calendar = settings.calendar()

    def user(self, user_id: str) -> SlackUser:
        person = member(user_id)
        if person is None:
            raise DeskError(f"{user_id!r} is not a member of the sandbox team")
        if self.socket_mode is not None:
            from bot.sandbox.socket_mode import SocketUser  # only loaded when websockets is there

            return SocketUser(self.socket_mode, person.id, person.name, channel=self.channel)
        return SlackUser(
            self.bot_url,
            self.slack,
            person.id,
            person.name,
            secret=self.settings.slack_signing_secret,
            channel=self.channel,
        )

    # -- what one user sees ------------------------------------------------------------------

    def state(self, user_id: str) -> Json:
        # A first visit has chosen nobody yet: show the first staff member's view.
        user = self.user(user_id or next(m.id for m in TEAM if not m.manager))
        people = {
            uid: (u.get("profile") or {}).get("real_name") or u["name"] for uid, u in self.slack.users.items()
        }
        return {
            "me": user.id,
            "timezone": str((self.slack.users.get(user.id) or {}).get("tz") or "UTC"),
            "team": [{"id": m.id, "name": m.real_name, "title": m.title, "manager": m.manager} for m in TEAM],
            "people": people,
            "bot": BOT_USER,
            "channel": {
                "id": self.channel,
                "name": self.slack.channel_name(self.channel),
                "messages": self._with_files(self.slack.messages(self.channel)),
            },
            "ephemerals": self.slack.ephemerals(user.id),
            "dms": self._with_files(self.slack.dms(user.id)),
            "dm_channel": self.slack.dm_channels.get(user.id),
            "home": self.slack.home.get(user.id),
            "modal": self.slack.open_modal(user.id),
            "outbox": [outgoing_mail(n, mail) for n, mail in enumerate(list(self.smtp.mails), start=1)],
            "clock": self.clock_state(),
            "support_address": self.settings.support_address,
            "transport": self.transport_state(),
        }

    def transport_state(self) -> Json:
        """How the page reaches the bot, for the page to say so: Socket Mode shows the sockets
        the bot has opened so far (each reconnection opens one more)."""
        if self.socket_mode is None:
            return {"kind": "http"}
        return {"kind": "socket", "connections": self.socket_mode.connections}

    def _with_files(self, messages: list[Json]) -> list[Json]:
        """Messages with what the page needs to draw their files: where to fetch the bytes,
        and whether those bytes are a picture it may show inline."""
        files = {str(f.get("id")): f for f in list(self.slack.files)}
        for message in messages:
            for item in [message, *(message.get("replies") or [])]:
                for shown in item.get("files") or []:
                    stored = files.get(str(shown.get("id")))
                    # Polled every second: only the bytes' first few are read, never copied.
                    data: bytes = (stored.get("content") or b"") if stored is not None else b""
                    image = image_type(data)
                    shown["url"] = f"/sandbox/files/{shown.get('id')}"
                    shown["preview"] = image
                    # Its size lets the page lay the thread out before the picture loads.
                    shown["preview_size"] = list(image_dimensions(data) or ()) if image else None
                    shown["pretty_type"] = pretty_type(str(shown.get("name") or ""), image)
                    # In the units the ticket's own post lists attachments in.
                    shown["size_label"] = human_size(int(shown.get("size") or len(data)))
        return messages

    def file(self, file_id: str) -> SharedFile | None:
        """A file the bot uploaded to the stand-in, by its Slack id."""
        for stored in list(self.slack.files):
            if str(stored.get("id")) == file_id:
                data: bytes = stored.get("content") or b""
                return SharedFile(file_id, str(stored.get("name") or file_id), data, image_type(data))
        return None

    def clock_state(self) -> Json:
        now = self.clock.now()
        local = now.astimezone(self.settings.timezone)
        return {
            "now": now.isoformat(),
            "local": local.strftime("%a %d %b %Y %H:%M"),
            "timezone": str(self.settings.timezone),
            "shifted": abs((now - datetime.now(now.tzinfo)).total_seconds()) > 60,
            "business_open": self.calendar.is_open(now),
        }

    # -- what one user does --------------------------------------------------------------------

    def act(self, request: Json) -> Json:
        """Use an interactive element: a button, an overflow option, a select, a date picker,
        on a message, an ephemeral message, a modal or App Home."""
        user = self.user(str(request.get("user")))
        action_id = _text(request, "action_id")
        block_id = request.get("block_id")
        value = request.get("value")
        where = request.get("where")
        if where == "view":
            view_id = _text(request, "view_id")
            if view_id not in self.slack.views:
                raise DeskError("that view is gone")
            values = request.get("values") if isinstance(request.get("values"), dict) else {}
            answer = user.pick(view_id, action_id, value, block_id=block_id, values=values)
        elif where in ("message", "ephemeral"):
            message = self._message(user.id, str(where), _text(request, "channel"), _text(request, "ts"))
            answer = user.click(message, action_id, value=value, block_id=block_id)
        else:
            raise DeskError("where must be message, ephemeral or view")
        return _outcome(answer)

    def _message(self, user: str, where: str, channel: str, ts: str) -> Json:
        if where == "message":
            found = self.slack.find_message(channel, ts)
        else:
            found = next(
                (
                    {**e, "is_ephemeral": True}
                    for e in self.slack.ephemerals(user)
                    if e.get("ts") == ts and e.get("channel") == channel
                ),
                None,
            )
        if found is None:
            raise DeskError("that message is gone")
        return found

    def submit(self, request: Json) -> Json:
        user = self.user(str(request.get("user")))
        view_id = _text(request, "view_id")
        if view_id not in self.slack.views:
            raise DeskError("that view is gone")
        values = request.get("values") if isinstance(request.get("values"), dict) else {}
        answer = user.submit(view_id, values)
        if answer.status == 200:
            self.slack.answer_submission(user.id, view_id, answer.json())
        return _outcome(answer)

    def close(self, request: Json) -> Json:
        user = self.user(str(request.get("user")))
        view_id = _text(request, "view_id")
        self.slack.close_modal(user.id)
        answer = user.close(view_id) if view_id in self.slack.views else None
        return _outcome(answer) if answer is not None else {"ok": True}

    def command(self, request: Json) -> Json:
        """A slash command typed in the composer, e.g. `/support open` or `/oncall`."""
        user = self.user(str(request.get("user")))
        line = _text(request, "text").strip()
        if not line.startswith("/") or len(line) < 2:
            raise DeskError("a command starts with /, e.g. /support help")
        command, _, text = line.partition(" ")
        answer = user.command(text.strip(), command)
        if answer.status != 200:
            # What Slack itself shows when an app does not answer a command properly (over
            # Socket Mode, an envelope never acknowledged).
            error = "operation_timeout" if answer.status == NOT_ACKNOWLEDGED else "dispatch_failed"
            self.slack.add_ephemeral(
                self.channel, user.id, f"{command} failed with the error “{error}” ({answer.status})"
            )
            return _outcome(answer)
        reply = answer.json()
        if reply.get("text") or reply.get("blocks"):
            if reply.get("response_type") == "in_channel":
                self.slack.post_as_user(self.channel, BOT_USER, str(reply.get("text") or ""))
            else:
                self.slack.add_ephemeral(
                    self.channel, user.id, str(reply.get("text") or ""), reply.get("blocks") or []
                )
        return _outcome(answer)

    def write(self, request: Json) -> Json:
        """A message in the channel, or in a ticket's thread (an internal note)."""
        user = self.user(str(request.get("user")))
        text = _text(request, "text").strip()
        if not text:
            raise DeskError("write something first")
        thread_ts = request.get("thread_ts") or None
        if thread_ts is not None and self.slack.find_message(self.channel, str(thread_ts)) is None:
            raise DeskError("that thread is gone")
        return _outcome(user.write(self.channel, text[:_MAX_FIELD], thread_ts=thread_ts))

    def open_home(self, request: Json) -> Json:
        return _outcome(self.user(str(request.get("user"))).open_home())

    def send_email(self, request: Json) -> Json:
        """A customer writes to the support address: the mail is appended to the mailbox,
        where the bot's watcher finds it as it would any other."""
        address = _text(request, "address").strip()
        if "@" not in address or any(c in address for c in " <>\r\n"):
            raise DeskError("the customer's address must look like someone@example.org")
        name = _text(request, "name", required=False).strip().replace("\n", " ")
        subject = _text(request, "subject", required=False).replace("\r", " ").replace("\n", " ")
        body = _text(request, "body", required=False) or "(no text)"
        in_reply_to = references = None
        if request.get("reply_to"):
            answered = self._caught(int(request["reply_to"]))
            in_reply_to = str(answered.get("Message-ID") or "") or None
            references = str(answered.get("References") or "") or None
            subject = subject or f"Re: {answered.get('Subject') or ''}"
        raw = customer_email(
            name=name,
            address=address,
            subject=subject,
            body=body,
            in_reply_to=in_reply_to,
            references=references,
            when=self.clock.now(),
            attachments=_attachments(request.get("attachments")),
        )
        uid = self.mailbox.append(raw)
        return {"ok": True, "uid": uid}

    def _caught(self, number: int) -> EmailMessage:
        mails = list(self.smtp.mails)
        if not 1 <= number <= len(mails):
            raise DeskError(f"there is no sent email #{number}")
        return mails[number - 1].message

    def jump_clock(self, request: Json) -> Json:
        """Move the bot's clock: to tonight (21:00 in TIMEZONE), to the next opening, by an
        hour or a day, or back to real time. The bot keeps running; only its 'now' moves."""
        to = _text(request, "to")
        now = self.clock.now()
        tz = self.settings.timezone
        if to == "now":
            target = datetime.now(now.tzinfo)
        elif to == "tonight":
            local = now.astimezone(tz)
            target = datetime.combine(local.date(), TONIGHT, tz)
            if target <= local:
                target += timedelta(days=1)
        elif to == "opening":
            target = self.calendar.next_opening(now + timedelta(seconds=1))
        elif to == "+1h":
            target = now + timedelta(hours=1)
        elif to == "+1d":
            target = now + timedelta(days=1)
        else:
            raise DeskError("to must be now, tonight, opening, +1h or +1d")
        self.clock.jump_to(target)
        log.info("sandbox clock moved to %s", target.isoformat())
        return {"ok": True, "clock": self.clock_state()}


def _text(request: Json, key: str, *, required: bool = True) -> str:
    value = request.get(key)
    if value is None or value == "":
        if required:
            raise DeskError(f"{key} is missing")
        return ""
    if not isinstance(value, str):
        raise DeskError(f"{key} must be text")
    if len(value) > _MAX_FIELD:
        raise DeskError(f"{key} is longer than {_MAX_FIELD} characters")
    return value


def _attachments(value: Any) -> list[tuple[str, str, bytes]]:
    """The email form's files, as (name, declared type, bytes): each one sent by the page as
    `{"name", "type", "data"}` with the bytes in base64, since the page sends only JSON."""
    if value is None or value == []:
        return []
    if not isinstance(value, list):
        raise DeskError("attachments must be a list")
    if len(value) > MAX_ATTACHMENTS:
        raise DeskError(f"attach at most {MAX_ATTACHMENTS} files")
    out: list[tuple[str, str, bytes]] = []
    total = 0
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
            raise DeskError("each attachment needs its data in base64")
        try:
            data = base64.b64decode(entry["data"], validate=True)
        except (binascii.Error, ValueError):
            raise DeskError("an attachment's data is not base64") from None
        total += len(data)
        if total > MAX_ATTACHMENT_BYTES:
            raise DeskError(f"attachments are limited to {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB in all")
        raw_name = entry.get("name")
        # A mail client keeps the name as the person chose it, <!channel> and all; only what
        # cannot stand in a header parameter goes.
        printable = (ch for ch in str(raw_name or "") if not unicodedata.category(ch).startswith("C"))
        name = "".join(printable).strip()[:_MAX_FILENAME] or f"attachment-{len(out) + 1}.bin"
        declared = entry.get("type")
        if not isinstance(declared, str) or not _MIME_TYPE.fullmatch(declared):
            # Browsers send "" for a type they do not know.
            declared = mimetypes.guess_type(name)[0] or "application/octet-stream"
        out.append((name, declared.lower(), data))
    return out


def image_type(data: bytes) -> str | None:
    return next((kind for magic, kind in _IMAGE_MAGIC if data.startswith(magic)), None)


def pretty_type(name: str, image: str | None) -> str:
    """What a file chip says the file is: a picture's real type, else its extension."""
    if image is not None:
        return image.removeprefix("image/").upper()
    stem, dot, extension = name.rpartition(".")
    if dot and stem and extension.isalnum() and len(extension) <= 8:
        return extension.upper()
    return "Binary"


def _outcome(answer: Answer) -> Json:
    """The bot's HTTP answer, for the page to show when something went wrong."""
    return {"ok": answer.status == 200, "status": answer.status, "answer": answer.json()}


def outgoing_mail(number: int, mail: CaughtMail) -> Json:
    """A mail the bot sent, as the page lists it: headers and both bodies."""
    message = mail.message
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    return {
        "number": number,
        "envelope_from": mail.mail_from,
        "envelope_to": list(mail.rcpt_tos),
        "headers": [
            [name, str(message.get(name))]
            for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References")
            if message.get(name) is not None
        ],
        "subject": str(message.get("Subject") or ""),
        "to": str(message.get("To") or ""),
        "text": str(text_part.get_content()) if text_part is not None else "",
        "html": str(html_part.get_content()) if html_part is not None else None,
    }

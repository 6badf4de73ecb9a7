"""Block Kit for ticket messages and thread posts.

All text that came from outside (email, user input) goes through `escape`
exactly once, here, so `<!channel>` in a subject is shown, never acted on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.tickets.status import TicketStatus
from bot.tickets.views import AttachmentInfo, MessageCard, TicketCard

Block = dict[str, Any]

# Action ids carried by the ticket buttons; listeners register on these names.
ACTION_CLAIM = "ticket_claim"
ACTION_REPLY = "ticket_reply"
ACTION_TAG = "ticket_tag"
ACTION_RESOLVE = "ticket_resolve"
ACTION_MORE = "ticket_more"  # overflow: unclaim, reassign, waiting on customer, reopen, spam
ACTION_NOT_SPAM = "ticket_not_spam"  # on a spam ticket's collapsed card and in `/support spam`

# Message.author of automatic replies (bot/tickets/autoack.py): not a Slack user to mention.
AUTO_AUTHOR = "auto"

TICKET_EVENT_TYPE = "supportbot_ticket"
MESSAGE_EVENT_TYPE = "supportbot_message"

# Slack's limits: section text 3,000 characters, a section field 2,000, header 150,
# fallback text 40,000. A post past one is refused (`invalid_blocks`) on every retry.
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
_HEADER_LIMIT = 150
_SNIPPET_LIMIT = 600
_THREAD_TEXT_LIMIT = 2800
_FALLBACK_LIMIT = 3000
# Outside names, addresses and file names are cut before escaping: an email may say
# anything in a header, and escaping can make text five times longer (`&` → `&amp;`).
_NAME_LIMIT = 200
_ADDRESS_LIMIT = 320
_FILENAME_LIMIT = 120
_RECIPIENTS_LIMIT = 1500
_TAGS_SHOWN = 20

STATUS_LABELS = {
    TicketStatus.OPEN: ":large_green_circle: Open",
    TicketStatus.CLAIMED: ":large_blue_circle: Claimed",
    TicketStatus.WAITING: ":hourglass_flowing_sand: Waiting on customer",
    TicketStatus.RESOLVED: ":white_check_mark: Resolved",
    TicketStatus.SPAM: ":no_entry_sign: Spam",
}

AUTO_REASON_LABELS = {
    "auto-submitted": "automatic message (Auto-Submitted)",
    "precedence-bulk": "bulk or list mail (Precedence)",
    "x-autoreply": "auto-reply (X-Autoreply)",
    "x-auto-response-suppress": "automatic message (X-Auto-Response-Suppress)",
    "bounce": "bounce / delivery report",
    "own-address": "sent from our own address",
    "malformed": "unreadable email",
}


def escape(text: str) -> str:
    """Make outside text inert in mrkdwn: Slack's three control characters become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Raw text cut to `limit` characters; for outside text, cut it before `escape`."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def modal(
    callback_id: str, title: str, submit: str, blocks: list[Block], metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A modal view: the title cut to Slack's 24 characters; `metadata`, what the submission
    must carry back (the modal's private_metadata), as JSON."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": truncate(title, 24)},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
    }
    if metadata is not None:
        view["private_metadata"] = json.dumps(metadata)
    return {**view, "blocks": blocks}


def fit(mrkdwn: str, limit: int = SECTION_LIMIT) -> str:
    """Finished mrkdwn cut to `limit` characters without splitting an entity (`&amp;`)
    or one of our tokens (`<@U1>`, `<!date^…>`): half of either shows as garbage, and
    a stray `&` or `<` is what escaping exists to rule out. Escaped outside text holds
    no `<`, so every `<` here is ours."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    cut = mrkdwn[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    token = cut.rfind("<")
    if token != -1 and ">" not in cut[token:]:
        cut = cut[:token]
    return cut.rstrip() + "…"


def packed_sections(rows: Sequence[str], *, limit: int = SECTION_LIMIT) -> list[Block]:
    """Lines of mrkdwn in as few sections as Slack's length limit allows, in order; a
    line too long for a section of its own is cut (`fit`)."""
    blocks: list[Block] = []
    chunk = ""
    for row in rows:
        row = fit(row, limit)
        if chunk and len(chunk) + 1 + len(row) > limit:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
            chunk = ""
        chunk = f"{chunk}\n{row}" if chunk else row
    if chunk:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    return blocks


def slack_date(moment: datetime, token: str = "{date_short_pretty} at {time}") -> str:
    """Slack's date formatting: shown in each reader's own time zone."""
    unix = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{unix}^{token}|{fallback}>"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _sender(name: str, address: str) -> str:
    name, address = truncate(name, _NAME_LIMIT), truncate(address, _ADDRESS_LIMIT)
    if name and address:
        return f"{escape(name)} &lt;{escape(address)}&gt;"
    return escape(name or address or "unknown sender")


def _quote(text: str, limit: int) -> str:
    body = escape(truncate(text.strip(), limit))
    if not body:
        return "_(no text)_"
    return fit("\n".join("&gt; " + line if line else "&gt;" for line in body.splitlines()))


def _attachment_line(attachments: tuple[AttachmentInfo, ...]) -> str:
    parts = [
        f":paperclip: {escape(truncate(a.filename, _FILENAME_LIMIT))} ({human_size(a.size)})"
        for a in attachments[:10]
    ]
    if len(attachments) > 10:
        parts.append(f"and {len(attachments) - 10} more")
    return "   ".join(parts)


def ticket_message(card: TicketCard) -> tuple[str, list[Block]]:
    """The ticket's one channel message: (fallback text, blocks)."""
    if card.status == TicketStatus.SPAM:
        return spam_message(card)
    subject = card.subject or "(no subject)"
    fallback = fit(
        f"#{card.number} {escape(truncate(subject, _FALLBACK_LIMIT))} — from "
        f"{_sender(card.customer_name, card.customer_email)}",
        _FALLBACK_LIMIT,
    )
    status = STATUS_LABELS.get(card.status, escape(truncate(card.status, 40)))
    if card.owner and card.status != TicketStatus.RESOLVED:
        status += f" by <@{card.owner}>"
    fields = [
        {"type": "mrkdwn", "text": f"*From*\n{_sender(card.customer_name, card.customer_email)}"},
        {"type": "mrkdwn", "text": f"*Received*\n{slack_date(card.created_at)}"},
        {"type": "mrkdwn", "text": f"*Status*\n{status}"},
        {
            "type": "mrkdwn",
            "text": "*Tags*\n" + (_tags(card.tags) if card.tags else "—"),
        },
    ]
    fields = [{**field, "text": fit(field["text"], FIELD_LIMIT)} for field in fields]
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(f"#{card.number} {subject}", _HEADER_LIMIT),
                "emoji": False,
            },
        },
        {"type": "section", "block_id": f"ticket:{card.id}:fields", "fields": fields},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _quote(card.snippet, _SNIPPET_LIMIT)},
        },
    ]
    notes: list[str] = []
    if card.urgent_reason:
        # The reason quotes a keyword or an address, which came from outside.
        notes.append(f":rotating_light: Urgent: {escape(truncate(card.urgent_reason, 300))}")
    if card.attachments:
        notes.append(_attachment_line(card.attachments))
    if card.malformed:
        reason = escape(truncate(card.parse_error or "unknown problem", 300))
        notes.append(f":warning: This email could not be read ({reason}). Its raw source is kept.")
    elif card.auto_reason:
        label = AUTO_REASON_LABELS.get(card.auto_reason, escape(truncate(card.auto_reason, 100)))
        notes.append(f":robot_face: {label}: it will never get an automatic reply.")
    if card.message_count > 1:
        notes.append(f":speech_balloon: {card.message_count} messages, see the thread")
    if notes:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": fit(n)} for n in notes],
            }
        )
    value = str(card.id)
    buttons: list[Block] = []
    if card.status != TicketStatus.RESOLVED and not card.owner:
        buttons.append(button("Claim", ACTION_CLAIM, value, style="primary"))
    buttons.append(button("Reply", ACTION_REPLY, value))
    buttons.append(button("Tag", ACTION_TAG, value))
    if card.status != TicketStatus.RESOLVED:
        buttons.append(button("Resolve", ACTION_RESOLVE, value))
    buttons.append(_more_menu(card))
    blocks.append({"type": "actions", "block_id": f"ticket:{card.id}:actions", "elements": buttons})
    return fallback, blocks


def _tags(tags: tuple[str, ...]) -> str:
    shown = " ".join(f"`{escape(truncate(t, 60))}`" for t in tags[:_TAGS_SHOWN])
    return shown + (f" and {len(tags) - _TAGS_SHOWN} more" if len(tags) > _TAGS_SHOWN else "")


def ticket_metadata(card: TicketCard, outbox_id: int) -> dict[str, Any]:
    # The outbox id lets a retry recognise a post that already happened.
    return {
        "event_type": TICKET_EVENT_TYPE,
        "event_payload": {"ticket_id": card.id, "number": card.number, "outbox_id": outbox_id},
    }


def _more_menu(card: TicketCard) -> Block:
    choices: list[tuple[str, str]] = []
    if card.owner and card.status != TicketStatus.RESOLVED:
        choices.append(("Unclaim", "unclaim"))
    if card.status != TicketStatus.RESOLVED:
        choices.append(("Reassign…", "reassign"))
    if card.status in (TicketStatus.OPEN, TicketStatus.CLAIMED):
        choices.append(("Waiting on customer", "waiting"))
    if card.status in (TicketStatus.RESOLVED, TicketStatus.WAITING):
        choices.append(("Reopen", "reopen"))
    choices.append(("Timeline", "timeline"))
    # Slack allows five options; this is the fifth at most (Unclaim, Reassign, Waiting/Reopen, Timeline).
    choices.append(("Mark as spam", "spam"))
    return {
        "type": "overflow",
        "action_id": ACTION_MORE,
        "options": [
            {"text": {"type": "plain_text", "text": label}, "value": f"{verb}:{card.id}"}
            for label, verb in choices
        ],
    }


def spam_message(card: TicketCard) -> tuple[str, list[Block]]:
    """A spam ticket's card, collapsed to one line with a way back."""
    who = "its sender is blocked" if card.spam_by in (None, "system") else f"marked by <@{card.spam_by}>"
    sender = card.customer_email or card.customer_name or "an unknown sender"
    sender = escape(truncate(sender, _ADDRESS_LIMIT))
    line = fit(f":no_entry_sign: #{card.number} Spam from {sender}, {who}", SECTION_LIMIT)
    blocks: list[Block] = [
        {
            "type": "section",
            "block_id": f"ticket:{card.id}:spam",
            "text": {"type": "mrkdwn", "text": line},
            "accessory": button("Not spam", ACTION_NOT_SPAM, str(card.id)),
        }
    ]
    return fit(line, _FALLBACK_LIMIT), blocks


def thread_message(card: MessageCard) -> tuple[str, list[Block]]:
    """A follow-up email (or a sent reply) in the ticket's thread."""
    if card.direction == "in":
        who = _sender(card.from_name, card.from_address)
        heading = f":incoming_envelope: *{who}* wrote, {slack_date(card.at)}"
    elif card.author == AUTO_AUTHOR:
        who = "supportbot"
        heading = f":robot_face: supportbot replied automatically, {slack_date(card.at)}"
    else:
        who = f"<@{card.author}>" if card.author else "supportbot"
        heading = f":outbox_tray: {who} replied, {slack_date(card.at)}"
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": fit(heading)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _quote(card.text, _THREAD_TEXT_LIMIT)},
        },
    ]
    notes = []
    if card.direction != "in" and (card.to or card.cc):
        notes.append(_recipients_line(card.to, card.cc))
    if card.attachments:
        notes.append(_attachment_line(card.attachments))
    if card.parse_error:
        notes.append(":warning: This email could not be read; its raw source is kept.")
    elif card.auto_reason and card.direction == "in":
        label = AUTO_REASON_LABELS.get(card.auto_reason, escape(truncate(card.auto_reason, 100)))
        notes.append(f":robot_face: {label}")
    if notes:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": fit(n)} for n in notes],
            }
        )
    fallback = fit(
        f"#{card.ticket_number}: {who}: {escape(truncate(card.text, _FALLBACK_LIMIT))}", _FALLBACK_LIMIT
    )
    return fallback, blocks


def _recipients_line(to: str, cc: str) -> str:
    """Who a reply went to; names and addresses came from email, so they are escaped."""
    line = f"To: {escape(truncate(to, _ADDRESS_LIMIT + _NAME_LIMIT))}" if to else ""
    if cc:
        # Up to 20 addresses with names; the limit keeps the context element within Slack's.
        copies = f"Cc: {escape(truncate(cc, _RECIPIENTS_LIMIT))}"
        line = f"{line}   {copies}" if line else copies
    return line


def message_metadata(card: MessageCard, outbox_id: int) -> dict[str, Any]:
    return {
        "event_type": MESSAGE_EVENT_TYPE,
        "event_payload": {
            "ticket_id": card.ticket_id,
            "message_id": card.id,
            "outbox_id": outbox_id,
        },
    }


def burst_summary(count: int, oldest: datetime | None) -> tuple[str, list[Block]]:
    since = f" since {slack_date(oldest)}" if oldest else ""
    text = (
        f":mailbox_with_mail: {count} new emails arrived{since}. "
        "Each gets its own ticket below, oldest first, at Slack's pace."
    )
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def attachment_not_uploaded(filename: str, size: int, why: str) -> str:
    """A thread note for a customer's attachment that is not shown as a file in Slack.

    `why` is our own words (over the size limit, Slack refused it), ending in a full stop;
    the file name came from the email and is escaped here like every outside text.
    """
    name = escape(truncate(filename, _FILENAME_LIMIT))
    return fit(
        f":paperclip: {name} ({human_size(size)}) {escape(truncate(why, 500))} It is in the support mailbox.",
        _FALLBACK_LIMIT,
    )

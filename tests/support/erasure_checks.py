"""Looking for an erased customer outside the database: the Slack stand-in and the SMTP catcher."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import CaughtMail


def _cell(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, ensure_ascii=False, default=str)


def slack_mentions(slack: SlackStandIn, needles: Iterable[str]) -> list[tuple[str, str, str]]:
    """(channel, ts or file id, needle) for each message (any channel, DM or thread) and each
    shared file (name, title and bytes) that still holds one of `needles`."""
    wanted = [n.lower() for n in needles]
    found: list[tuple[str, str, str]] = []
    with slack._lock:
        for channel, posts in slack.posts.items():
            for post in posts:
                if post.deleted:
                    continue
                text = _cell(post.as_api(True)).lower()
                found.extend((channel, post.ts, n) for n in wanted if n in text)
        for record in slack.files:
            text = " ".join(_cell(v) for v in record.values()).lower()
            found.extend((str(record.get("channel")), str(record.get("id")), n) for n in wanted if n in text)
    return found


def mail_mentions(mails: Iterable[CaughtMail], needles: Iterable[str]) -> list[tuple[int, str]]:
    wanted = [n.lower() for n in needles]
    found = []
    for index, mail in enumerate(mails):
        text = mail.raw.decode("utf-8", "replace").lower()
        message = mail.message()
        body = message.get_body(("plain",))
        text += f" {message['Subject']} {message['To']} {body.get_content() if body else ''}".lower()
        found.extend((index, n) for n in wanted if n in text)
    return found

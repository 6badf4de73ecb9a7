"""Checks on what the bot sends Slack: Slack's Block Kit limits (shared with the Slack
stand-in, `bot/sandbox/block_kit.py`) and mrkdwn injection.

Injection is told apart from our own markup by construction: every hostile string
carries MARKER, which no renderer ever writes. Outside text is inert when no `<…>`
token of the output holds the marker, no broadcast (`<!channel>`, `<!here>`,
`<!everyone>`, `<!subteam^…>`) appears at all (we never write one), and every `&`
starts one of the three entities Slack knows (so `&lt;` typed by a customer stays
`&amp;lt;`, shown as typed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bot.sandbox.block_kit import (
    Surface,
    blocks_problems,
    message_problems,
    text_objects,
    view_problems,
)

__all__ = [
    "HOSTILE_FRAGMENTS",
    "MARKER",
    "assert_safe_message",
    "assert_safe_view",
    "blocks_problems",
    "injection_problems",
    "message_problems",
    "mrkdwn_texts",
    "view_problems",
]

MARKER = "Zq9"

# Each is something Slack would act on or render as a link if it reached mrkdwn unescaped.
HOSTILE_FRAGMENTS = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    f"<!here|{MARKER}>",
    f"<!subteam^S{MARKER}|@oncall>",
    f"<@U{MARKER}>",
    f"<@W{MARKER}|boss>",
    f"<#C{MARKER}|general>",
    f"<http://{MARKER}.example/|click me>",
    f"<mailto:{MARKER}@example.org|mail>",
    f"<!date^1^{{date}}|{MARKER}>",
    "&lt;!channel&gt;",
    f"&amp;{MARKER}",
    "&",
    "<",
    ">",
    f"*{MARKER}*",
    "```",
    "\n> quoted\n",
    "`",
    "_",
    "~",
    ":rotating_light:",
    "\u202e",  # right-to-left override
    "\u200b",
    "💥",
)

_TOKEN = re.compile(r"<([^<>]*)>")
_BROADCAST = re.compile(r"<!(channel|here|everyone|subteam\^)")
_RAW_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def injection_problems(text: str) -> list[str]:
    problems = []
    if _BROADCAST.search(text):
        problems.append(f"broadcast in {text[:200]!r}")
    for token in _TOKEN.findall(text):
        if MARKER in token:
            problems.append(f"outside text inside <{token[:100]}>")
    if _RAW_AMPERSAND.search(text):
        at = _RAW_AMPERSAND.search(text)
        assert at is not None
        problems.append(f"raw & in …{text[max(0, at.start() - 40) : at.start() + 40]!r}…")
    return problems


def texts_of_type(node: Any, kind: str) -> list[str]:
    """Every text of Block Kit element type `kind` ("mrkdwn", "plain_text") anywhere in `node`."""
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == kind and isinstance(node.get("text"), str) else []
        return found + [t for value in node.values() for t in texts_of_type(value, kind)]
    if isinstance(node, list):
        return [t for item in node for t in texts_of_type(item, kind)]
    return []


def mrkdwn_texts(value: Any) -> Iterator[str]:
    """Every mrkdwn text object's text in blocks or a view."""
    for obj in text_objects(value):
        if obj.get("type") == "mrkdwn":
            yield obj["text"]


def assert_safe_message(text: str | None, blocks: Any = None, metadata: Any = None) -> None:
    """A message (or an ephemeral answer) Slack accepts, with outside text inert."""
    problems = message_problems(text, blocks, metadata)
    for item in ([text] if text else []) + list(mrkdwn_texts(blocks or [])):
        problems += injection_problems(item)
    assert not problems, "\n".join(problems)


def assert_safe_blocks(blocks: Any, surface: Surface = "message") -> None:
    problems = blocks_problems(blocks, surface)
    for item in mrkdwn_texts(blocks):
        problems += injection_problems(item)
    assert not problems, "\n".join(problems)


def assert_safe_view(view: Any) -> None:
    problems = view_problems(view)
    for item in mrkdwn_texts(view.get("blocks") or []):
        problems += injection_problems(item)
    assert not problems, "\n".join(problems)

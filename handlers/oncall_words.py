"""Reading `/oncall`'s words: mentions, dates and numbers typed after the verb, and the
usage line to show when they cannot be read."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from bot.slack import oncall as ui
from bot.slack.render import Block, escape
from rota.errors import RotaError

# Slack's escaped mention in command text: <@U123|name>, or <@U123> from some clients.
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_MENTION_WORD = re.compile(r"^<@([UW][A-Z0-9]+)>$")
N = TypeVar("N", float, Decimal)


class BadInput(RotaError):
    """Words we could not read; the answer adds the verb's usage."""


class NotAllowed(Exception):
    """A manager's verb asked for by someone else; the message is the standard refusal."""


@dataclass
class Reply:
    text: str = ""
    blocks: list[Block] | None = None
    # Slack calls that must wait until the command is acknowledged (a modal, an upload).
    then: Callable[[], None] | None = None


def words_of(text: str) -> list[str]:
    return _MENTION.sub(lambda m: f"<@{m.group(1)}>", text or "").split()


def user_arg(word: str) -> str:
    found = _MENTION_WORD.match(word)
    if found is None:
        raise BadInput(
            f"I can't tell who `{escape(word)}` is: pick the person from the list Slack offers as you "
            "type @, so the command carries a mention."
        )
    return found.group(1)


def day_arg(word: str) -> date:
    # Only the ISO form: 03/04 is March to some and April to others.
    try:
        if len(word) == 10:
            return date.fromisoformat(word)
    except ValueError:
        pass
    raise BadInput(f"`{escape(word)}` is not a date I can read: write it as 2026-12-21.")


def whole_arg(word: str, what: str, low: int, high: int) -> int:
    if not word.isdigit() or not low <= int(word) <= high:
        raise BadInput(f"{what} is a whole number from {low} to {high}, not `{escape(word)}`.")
    return int(word)


def number_arg(word: str, kind: Callable[[str], N], what: str) -> N:
    """`word` read as a float or a Decimal; `what` says what was wanted ("a number; …")."""
    try:
        return kind(word)
    except (ValueError, InvalidOperation):
        raise BadInput(f"`{escape(word)}` is not {what}.") from None


def usage_for(verb: str, args: Sequence[str]) -> str:
    key = verb
    if verb == "away" and args and args[0].startswith("<@"):
        key = "away_for"
    elif verb == "away" and args[:1] == ["sync"]:
        key = "away_sync"
    elif verb == "comp" and args[:1] and args[0] in ("all", "adjust", "export"):
        key = "comp_manage"
    return "Usage: " + ui.USAGE_LINES.get(key, ui.USAGE_LINES[""])

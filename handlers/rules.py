"""`/support rules …`: managers list and edit the urgency rules.

/support rules
/support rules add keyword "server down" urgent
/support rules add domain vip.example.com            (urgent unless it says "not urgent")
/support rules add sender noreply@vip.example.com not urgent
/support rules remove 3
/support rules move 3 1
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.slack.after_hours import rules_blocks
from bot.slack.render import escape
from bot.tickets import urgency
from bot.tickets.urgency import RuleError
from handlers.access import Access
from handlers.common import run_domain

if TYPE_CHECKING:
    from bot.services import Services

RULES_USAGE = (
    "Use `/support rules`, `/support rules add KIND PATTERN [urgent|not urgent]` "
    '(KIND: keyword, sender, domain or tag; quote a phrase: `"server down"`), '
    "`/support rules remove N` or `/support rules move N M`."
)
# Slack's composer turns straight quotes into curly ones on some clients.
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class NewRule:
    kind: str
    pattern: str
    urgent: bool


def parse_add(text: str) -> NewRule:
    """`keyword "server down" urgent` → NewRule; raises RuleError with the usage."""
    tokens = [
        (m.group(1) is not None, m.group(1) if m.group(1) is not None else m.group(2))
        for m in _TOKEN.finditer(text.translate(_QUOTES))
    ]
    if len(tokens) < 2:
        raise RuleError(RULES_USAGE)
    kind = tokens[0][1].lower()
    rest = tokens[1:]
    urgent = True
    tail = [word.lower() if not quoted else None for quoted, word in rest[-2:]]
    # The verdict is the unquoted tail: "urgent", "not urgent", "not-urgent".
    if len(rest) >= 3 and tail == ["not", "urgent"]:
        urgent, rest = False, rest[:-2]
    elif rest and not rest[-1][0] and rest[-1][1].lower() in ("not-urgent", "noturgent"):
        urgent, rest = False, rest[:-1]
    elif len(rest) >= 2 and not rest[-1][0] and rest[-1][1].lower() == "urgent":
        rest = rest[:-1]
    if not rest:
        raise RuleError(f"Say what the {kind} rule matches. {RULES_USAGE}")
    pattern = " ".join(word for _, word in rest)
    return NewRule(kind, pattern, urgent)


def _position(value: str) -> int:
    if not value.lstrip("#").isdigit():
        raise RuleError(f"{value!r} is not a rule number. {RULES_USAGE}")
    return int(value.lstrip("#"))


def rules_command(services: Services, access: Access, ack: Any, user: str, text: str) -> None:
    """Everything after `/support rules`, as typed."""
    if not access.is_manager(user):
        ack(text=access.refusal("manager"))
        return
    now = services.clock.now()
    words = text.split()
    verb, args = (words[0].lower(), words[1:]) if words else ("list", [])
    try:
        if verb == "list" and not args:
            done = ""
        elif verb == "add":
            new = parse_add(text.split(None, 1)[1] if len(words) > 1 else "")
            rule = run_domain(
                services,
                lambda s: urgency.add_rule(
                    s, kind=new.kind, pattern=new.pattern, urgent=new.urgent, user=user, now=now
                ),
            )
            done = f"Added rule {rule.position}: {rule.describe()}."
        elif verb == "remove" and len(args) == 1:
            position = _position(args[0])
            rule = run_domain(
                services, lambda s: urgency.remove_rule(s, position=position, user=user, now=now)
            )
            done = f"Removed rule {position}: {rule.describe()}."
        elif verb == "move" and len(args) == 2:
            start, end = _position(args[0]), _position(args[1])
            rule = run_domain(
                services,
                lambda s: urgency.move_rule(s, from_position=start, to_position=end, user=user, now=now),
            )
            done = f"Moved {rule.describe()} to position {end}."
        else:
            raise RuleError(RULES_USAGE)
    except RuleError as exc:
        # Rule errors quote what was typed; they never carry our own mentions.
        ack(text=escape(str(exc)))
        return
    rules = run_domain(services, urgency.load_rules)
    blocks = rules_blocks(rules)
    if done:
        blocks.insert(
            0, {"type": "section", "text": {"type": "mrkdwn", "text": f":white_check_mark: {escape(done)}"}}
        )
    # The fallback text is mrkdwn too, and `done` quotes the pattern as typed.
    ack(text=escape(done) or "Urgency rules", blocks=blocks)

"""Block Kit for after-hours administration: urgency rules, template close rates, the automation modal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.slack.render import Block, escape, fit, packed_sections, slack_date, truncate
from bot.tickets.automation import WHENS, Automation, TemplateStats
from bot.tickets.urgency import Rule

ACTION_AUTOMATE = "automation_open"  # button: open the modal for a template (value: its name)
ACTION_AUTOMATION_OFF = "automation_off"  # button: stop automating a template (value: its name)
AUTOMATION_CALLBACK = "automation_enable"
WHEN_BLOCK = "automation_when"
MATCH_KIND_BLOCK = "automation_match_kind"
PATTERN_BLOCK = "automation_pattern"

_KIND_LABELS = {"keyword": "keyword", "sender": "sender", "domain": "domain", "tag": "tag"}


def rules_blocks(rules: Sequence[Rule]) -> list[Block]:
    head: Block = {"type": "header", "text": {"type": "plain_text", "text": "Urgency rules"}}
    if not rules:
        return [
            head,
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "No rules yet, so nothing is urgent. Add one with "
                    '`/support rules add keyword "server down" urgent`.',
                },
            },
        ]
    rows = []
    for rule in rules:
        verdict = ":rotating_light: urgent" if rule.urgent else ":zzz: not urgent"
        shown = escape(truncate(rule.pattern, 200))
        pattern = f"“{shown}”" if rule.kind == "keyword" else f"`{shown}`"
        note = f" · _{escape(truncate(rule.note, 80))}_" if rule.note else ""
        rows.append(f"*{rule.position}.* {_KIND_LABELS[rule.kind]} {pattern} → {verdict}{note}")
    blocks: list[Block] = [head, *packed_sections(rows)[:47]]
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "The first rule that matches decides; no match is not urgent. "
                    "`rules move 3 1` puts rule 3 first, `rules remove 3` deletes it.",
                }
            ],
        }
    )
    return blocks[:50]


def automation_blocks(
    stats: Sequence[TemplateStats],
    automated: Sequence[Automation],
    *,
    min_uses: int,
    min_rate: float,
    days: float,
) -> list[Block]:
    by_name = {a.name: a for a in automated}
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Template close rates"}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Share of tickets resolved within {days:g} days of the template's reply with no "
                    f"further message from the customer. A template can go automatic with at least "
                    f"{min_uses} uses and {min_rate:.0%}.",
                }
            ],
        },
    ]
    if not stats and not automated:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"No template replies older than {days:g} days yet."},
            }
        )
    seen: set[str] = set()
    for item in stats:
        seen.add(item.name)
        current = by_name.get(item.name)
        line = f"`{escape(item.name)}` *{item.rate:.0%}* closed · {item.closed} of {item.uses} tickets"
        if current is not None:
            blocks.append(_automated_section(line, current))
        elif item.uses >= min_uses and item.rate >= min_rate:
            blocks.append(_section(line, _button("Automate…", ACTION_AUTOMATE, item.name, "primary")))
        else:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
    for current in automated:
        if current.name not in seen:
            blocks.append(_automated_section(f"`{escape(current.name)}` no measured uses yet", current))
    return blocks[:50]


def _automated_section(line: str, current: Automation) -> Block:
    text = (
        f"{line}\n:robot_face: Automatic {escape(truncate(current.describe(), 400))}, "
        f"since {slack_date(current.enabled_at)} by <@{current.enabled_by}>"
    )
    return _section(text, _button("Turn off", ACTION_AUTOMATION_OFF, current.name, "danger"))


def _section(text: str, accessory: Block) -> Block:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": fit(text)},
        "accessory": accessory,
    }


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _option(value: str, label: str) -> Block:
    return {"text": {"type": "plain_text", "text": label}, "value": value}


def automation_modal(name: str, stats: TemplateStats | None, current: Automation | None) -> dict[str, Any]:
    when_options = [_option(value, label.capitalize()) for value, label in WHENS.items()]
    kind_options = [_option("tag", "Tickets with a tag"), _option("keyword", "Tickets containing a keyword")]
    when = current.when if current else "after_hours"
    kind = current.match_kind if current else "tag"
    pattern: Block = {"type": "plain_text_input", "action_id": "value"}
    if current:
        pattern["initial_value"] = current.match_pattern[:3000]
    summary = (
        f"`{escape(name)}` closed {stats.closed} of {stats.uses} tickets ({stats.rate:.0%})."
        if stats
        else f"`{escape(name)}`"
    )
    return {
        "type": "modal",
        "callback_id": AUTOMATION_CALLBACK,
        "title": {"type": "plain_text", "text": "Automate template"},
        "submit": {"type": "plain_text", "text": "Automate"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"name": name}),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{summary}\nMatching new tickets get this template by email at once, "
                    "recorded as an automatic reply. Turn it off any time from `/support automation`.",
                },
            },
            {
                "type": "input",
                "block_id": WHEN_BLOCK,
                "label": {"type": "plain_text", "text": "When"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": when_options,
                    "initial_option": next(o for o in when_options if o["value"] == when),
                },
            },
            {
                "type": "input",
                "block_id": MATCH_KIND_BLOCK,
                "label": {"type": "plain_text", "text": "Which tickets"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": kind_options,
                    "initial_option": next(o for o in kind_options if o["value"] == kind),
                },
            },
            {
                "type": "input",
                "block_id": PATTERN_BLOCK,
                "label": {"type": "plain_text", "text": "Tag or keyword"},
                "hint": {"type": "plain_text", "text": "e.g. password, or a phrase like “reset my password”"},
                "element": pattern,
            },
        ],
    }

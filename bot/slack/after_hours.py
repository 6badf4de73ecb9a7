"""Block Kit for after-hours administration: urgency rules, template close rates, the automation modal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack.render import Block, button, escape, fit, modal, packed_sections, slack_date, truncate
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
            blocks.append(_section(line, button("Automate…", ACTION_AUTOMATE, item.name, "primary")))
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
    return _section(text, button("Turn off", ACTION_AUTOMATION_OFF, current.name, "danger"))


def _section(text: str, accessory: Block) -> Block:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": fit(text)},
        "accessory": accessory,
    }


def _option(value: str, label: str) -> Block:
    return {"text": {"type": "plain_text", "text": label}, "value": value}


def _choice(block_id: str, label: str, options: list[Block], chosen: str) -> Block:
    """A required drop-down whose `chosen` value (one of the options') is picked already."""
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "static_select",
            "action_id": "value",
            "options": options,
            "initial_option": next(o for o in options if o["value"] == chosen),
        },
    }


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
    blocks: list[Block] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{summary}\nMatching new tickets get this template by email at once, "
                "recorded as an automatic reply. Turn it off any time from `/support automation`.",
            },
        },
        _choice(WHEN_BLOCK, "When", when_options, when),
        _choice(MATCH_KIND_BLOCK, "Which tickets", kind_options, kind),
        {
            "type": "input",
            "block_id": PATTERN_BLOCK,
            "label": {"type": "plain_text", "text": "Tag or keyword"},
            "hint": {"type": "plain_text", "text": "e.g. password, or a phrase like “reset my password”"},
            "element": pattern,
        },
    ]
    return modal(AUTOMATION_CALLBACK, "Automate template", "Automate", blocks, {"name": name})

"""Block Kit for what `/support` answers and App Home shows: queues, timelines, templates, help."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.slack.render import (
    ACTION_NOT_SPAM,
    STATUS_LABELS,
    Block,
    escape,
    fit,
    packed_sections,
    slack_date,
    truncate,
)
from bot.tickets.queries import TicketLine, Timeline
from bot.tickets.spam import BlockedLine, SpamLine

SUPPORT_USAGE = """*`/support` commands*
• `/support open`: unclaimed tickets, oldest first
• `/support mine`: tickets you own
• `/support ticket 123`: the full timeline of #123
• `/support customer someone@example.com`: what we hold about that customer, their tickets first
• `/support customer export someone@example.com` · `customer erase someone@example.com`: their data \
as a ZIP in your DMs, or erased after you confirm (managers)
• `/support search refund "credit card" from:ada@example.com tag:billing status:open owner:me \
after:2026-01-01 before:2026-02-01 #123`: find tickets, newest first (words match the subject, \
the customer and the messages)
• `/support claim 123` · `unclaim 123` · `resolve 123` · `reopen 123`
• `/support templates` · `/support templates NAME`: list or preview reply templates
• `/support template new` · `/support template edit NAME`: add or change a template (managers)
• `/support rules`: urgency rules, in order (managers)
• `/support rules add keyword "server down" urgent` · `rules add domain vip.example.com` · \
`rules add sender noreply@vip.example.com not urgent`: add a rule (managers)
• `/support rules remove 3` · `/support rules move 3 1`: delete or reorder rules (managers)
• `/support automation`: close rate of each template, and switching proven ones to automatic (managers)
• `/support automation off NAME`: stop sending a template automatically (managers)
• `/support stats [week|month|quarter|2026-01-01 2026-03-31]`: figures and charts (the last 7 days \
by default; managers see the team, everyone else their own)
• `/support export tickets|events|rota|ledger [period]`: a CSV file in your DMs (managers)
• `/support spam`: recent spam tickets (with *Not spam* buttons) and blocked senders
• `/support spam unblock someone@example.com`: let an address's mail through again
• `/support spam block-domain example.com` · `spam unblock-domain example.com`: set a whole domain's \
mail aside as spam, or stop (managers)
• `/support status`: whether the mailbox, outgoing mail and Slack delivery work, and which replica leads
• `/support help`: this list"""

ACTION_VIEWS = {
    "claimed": "claimed it",
    "unclaimed": "released it",
    "reassigned": "reassigned it",
    "resolved": "resolved it",
    "reopened": "reopened it",
    "waiting_on_customer": "set it to waiting on customer",
    "customer_replied": "customer replied",
    "status_changed": "changed its status",
    "tagged": "changed tags",
    "note_added": "added an internal note",
    "replied": "replied by email",
    "reply_delivered": "reply delivered",
    "reply_late": "reply still undelivered",
    "reply_failed": "reply could not be delivered",
    "ticket_created": "opened the ticket",
    "customer_message": "wrote again",
    "malformed_email": "sent an unreadable email",
    "nudged": "nudged: still unclaimed",
    "triaged": "triaged the ticket",
    "auto_reply_withheld": "held back an automatic reply",
    "marked_spam": "marked it as spam",
    "marked_not_spam": "marked it as not spam",
    "sender_blocked": "blocked the sender",
    "sender_unblocked": "unblocked the sender",
}


_LIST_SECTIONS = 20


def _age(created: datetime, now: datetime) -> str:
    minutes = int((now - created).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes // (24 * 60)} days"


def _link(line: TicketLine, team_url: str | None) -> str:
    label = f"#{line.number}"
    if team_url and line.slack_channel and line.slack_ts:
        return f"<{team_url}archives/{line.slack_channel}/p{line.slack_ts.replace('.', '')}|{label}>"
    return label


def ticket_lines(
    title: str, lines: Sequence[TicketLine], now: datetime, *, empty: str, team_url: str | None = None
) -> list[Block]:
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    if not lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": empty}})
        return blocks
    rows = []
    for line in lines:
        owner = f" · <@{line.owner}>" if line.owner else ""
        status = STATUS_LABELS.get(line.status, escape(line.status))
        rows.append(
            f"{_link(line, team_url)} *{escape(truncate(line.subject or '(no subject)', 80))}* "
            f"from {escape(truncate(line.customer or 'unknown', 80))} · {status}{owner} · "
            f"{_age(line.created_at, now)} old"
        )
    # Escaping can make a row five times longer: pack by length, not by count. A message
    # holds 50 blocks, and App Home puts two lists in one view.
    sections = packed_sections(rows)
    if len(sections) > _LIST_SECTIONS:
        more = sum(text.count("\n") + 1 for text in (b["text"]["text"] for b in sections[_LIST_SECTIONS:]))
        sections = sections[:_LIST_SECTIONS]
        sections.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"…and {more} more."}]})
    return blocks + sections


def search_results(
    query: str,
    lines: Sequence[TicketLine],
    more: int,
    now: datetime,
    *,
    bodies_since: datetime | None = None,
) -> list[Block]:
    """`/support search`: the matches newest first, and how many did not fit."""
    # A header is plain text, so the query as typed shows as such and pings nobody.
    blocks = ticket_lines(
        truncate(f"Search: {' '.join(query.split())}", 150),
        lines,
        now,
        empty="No ticket matches that search.",
    )
    notes = []
    if more:
        notes.append(f"{more:,} more; narrow your search.")
    if bodies_since is not None:
        notes.append(
            f"Message text was searched in tickets since {slack_date(bodies_since, '{date_short}')} "
            "(subjects and customers in all); add `before:` to look further back."
        )
    if notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " ".join(notes)}]})
    return blocks


def timeline_blocks(timeline: Timeline) -> list[Block]:
    ticket = timeline.ticket
    head = (
        f"*#{ticket.number} {escape(truncate(ticket.subject or '(no subject)', 300))}*\n"
        f"From {escape(truncate(ticket.customer or 'unknown', 300))} · {_status(ticket.status)}"
        + (f" · owner <@{ticket.owner}>" if ticket.owner else "")
    )
    rows = []
    for entry in timeline.entries:
        who = _actor(entry.actor)
        what = ACTION_VIEWS.get(entry.action, escape(entry.action.replace("_", " ")))
        detail = _detail(entry.action, entry.data)
        rows.append(fit(f"{slack_date(entry.at, '{date_short} {time}')} {who} {what}{detail}", 600))
    blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": fit(head)}}]
    return (blocks + packed_sections(rows))[:50]


def _status(status: str) -> str:
    return STATUS_LABELS.get(status, escape(truncate(status, 40)))


def _actor(actor: str) -> str:
    if actor.startswith("customer:"):
        return escape(truncate(actor.split(":", 1)[1], 100))
    if actor in ("system", "auto"):
        return "supportbot"
    return f"<@{actor}>"


def _detail(action: str, data: dict[str, Any]) -> str:
    if action == "customer_message" and data.get("previous_status"):
        if data["previous_status"] == "resolved":
            return " and reopened it"
        return " (it was waiting on them)" if data["previous_status"] == "waiting" else ""
    if action == "tagged":
        added = ", ".join(data.get("added") or [])
        removed = ", ".join(data.get("removed") or [])
        parts = [f"+{escape(added)}" if added else "", f"−{escape(removed)}" if removed else ""]
        return ": " + " ".join(p for p in parts if p)
    if action == "reassigned" and data.get("owner"):
        return f" to <@{data['owner']}>"
    if action == "replied":
        to = f" to {escape(truncate(str(data['to']), 100))}" if data.get("to") else ""
        copies = [str(a) for a in data.get("cc") or []]
        if copies:
            shown = ", ".join(escape(truncate(a, 100)) for a in copies[:3])
            to += f", cc {shown}" + (f" and {len(copies) - 3} more" if len(copies) > 3 else "")
        if data.get("template"):
            automatic = ", automatically" if data.get("automatic") else ""
            to += f" (template `{escape(str(data['template']))}`{automatic})"
        return to
    if action == "reply_delivered" and data.get("cc_refused"):
        refused = ", ".join(escape(truncate(str(a), 100)) for a in list(data["cc_refused"])[:3])
        return f"; the mail server refused the copies to {refused}"
    if action == "triaged":
        urgent = f"urgent: {escape(str(data.get('reason') or ''))}" if data.get("urgent") else "not urgent"
        return f": {'after hours' if data.get('after_hours') else 'in business hours'}, {urgent}"
    if action == "auto_reply_withheld" and data.get("reason"):
        return f": {escape(str(data['reason']))}"
    return ""


def template_list(templates: Sequence[Any]) -> list[Block]:
    if not templates:
        return [{"type": "section", "text": {"type": "mrkdwn", "text": "No reply templates yet."}}]
    rows = [
        f"• `{escape(t.name)}` *{escape(truncate(t.title, 100))}* ({escape(truncate(t.language, 20))})"
        + (f" · {' '.join('`' + escape(tag) + '`' for tag in t.tags)}" if t.tags else "")
        + (f" · v{t.version} edited in Slack" if getattr(t, "source", "file") == "db" else "")
        for t in templates
    ]
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": "Reply templates"}}]
    blocks += packed_sections(rows)[:47]
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "Preview one with `/support templates NAME`."}],
        }
    )
    return blocks


def template_preview(template: Any) -> list[Block]:
    body = fit(escape(truncate(template.text, 2800)), 2994)
    blocks: list[Block] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    f"*{escape(truncate(template.title, 200))}* · `{escape(template.name)}` "
                    f"({escape(truncate(template.language, 20))})"
                ),
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "```" + body + "```"}},
    ]
    if template.html:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Also has an HTML version."}]}
        )
    return blocks


def home_view(
    *,
    user: str,
    mine: Sequence[TicketLine],
    queue: Sequence[TicketLine],
    waiting: int,
    now: datetime,
    stats: Sequence[Block] = (),
) -> dict[str, Any]:
    blocks = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"Hello <@{user}>. Updated {slack_date(now)}."},
        },
        *stats,  # managers only: the last week at a glance (bot/slack/stats.py)
        *ticket_lines("Your open tickets", mine, now, empty="Nothing on your plate."),
        {"type": "divider"},
        *ticket_lines(f"Unclaimed ({waiting})", queue, now, empty=":sparkles: Every ticket has an owner."),
    ]
    return {"type": "home", "blocks": blocks[:100]}


def not_staff_home() -> dict[str, Any]:
    return {
        "type": "home",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "supportbot works for the support team. Join its channel to see tickets.",
                },
            }
        ],
    }


_SPAM_SHOWN = 20
_BLOCKED_SECTIONS = 5


def spam_list(spam: Sequence[SpamLine], blocked: Sequence[BlockedLine]) -> list[Block]:
    """`/support spam`: spam tickets newest first, each with *Not spam*, then the blocked senders."""
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": "Spam, newest first"}}]
    if not spam:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "No ticket is marked as spam."}})
    for line in spam[:_SPAM_SHOWN]:
        who = "sender blocked" if line.by == "system" else f"marked by <@{line.by}>"
        text = (
            f"#{line.number} *{escape(truncate(line.subject or '(no subject)', 120))}* "
            f"from {escape(truncate(line.sender or 'an unknown sender', 200))} · {who} {slack_date(line.at)}"
        )
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": fit(text)},
                "accessory": {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Not spam"},
                    "action_id": ACTION_NOT_SPAM,
                    "value": str(line.id),
                },
            }
        )
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Blocked senders"}})
    rows = []
    for entry in blocked:
        what = (
            f"everyone at {escape(truncate(entry.value, 253))}"
            if entry.kind == "domain"
            else escape(truncate(entry.value, 320))
        )
        source = f", from #{entry.ticket_number}" if entry.ticket_number is not None else ""
        by = "" if entry.by == "system" else f" by <@{entry.by}>"
        rows.append(f"• {what}: blocked{by} {slack_date(entry.at)}{source}")
    sections = packed_sections(rows)
    shown = sections[:_BLOCKED_SECTIONS]
    blocks += shown or [{"type": "section", "text": {"type": "mrkdwn", "text": "Nobody is blocked."}}]
    if len(sections) > len(shown):
        more = sum(b["text"]["text"].count("\n") + 1 for b in sections[len(shown) :])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"…and {more} more."}]})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Unblock with `/support spam unblock ADDRESS`; managers block or unblock a "
                    "whole domain with `/support spam block-domain|unblock-domain DOMAIN`.",
                }
            ],
        }
    )
    return blocks

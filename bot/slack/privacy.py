"""Block Kit and words for a customer's data: what we hold (`/support customer ADDRESS`), the
export on its way, and the erasure's confirmation modal and its answers."""

from __future__ import annotations

from bot.privacy.erasure import ErasurePreview, ErasureStarted
from bot.privacy.holdings import HeldTicket, Holdings
from bot.slack.render import STATUS_LABELS, Block, escape, modal, packed_sections, slack_date, truncate

ERASE_CALLBACK = "customer_erase"
CONFIRM_BLOCK = "confirm_address"
CONFIRM_ACTION = "typed"

CUSTOMER_USAGE = (
    "Give one email address: `/support customer ada@example.com` shows what we hold about them; "
    "managers add `export` (a ZIP in your DMs) or `erase` (asks you to confirm first), like "
    "`/support customer export ada@example.com`."
)


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"*{count:,}* {one if count == 1 else (many or one + 's')}"


def _address(address: str) -> str:
    return escape(truncate(address, 320))


def not_an_address(typed: str) -> str:
    return f"`{escape(truncate(typed, 100))}` is not an email address. {CUSTOMER_USAGE}"


def _ticket_link(ticket: HeldTicket, team_url: str | None) -> str:
    label = f"#{ticket.number}"
    if team_url and ticket.slack_channel and ticket.slack_ts:
        return f"<{team_url}archives/{ticket.slack_channel}/p{ticket.slack_ts.replace('.', '')}|{label}>"
    return label


def holdings_blocks(held: Holdings, *, team_url: str | None, manager: bool) -> list[Block]:
    """What we hold about one customer, counts first, then their newest tickets with links."""
    title = truncate(f"What we hold about {held.address}", 150)
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    if not held.anything:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "Nothing: no ticket, block or record."}}
        )
        return blocks
    who = escape(truncate(held.name, 200)) or "No name given"
    since = (
        f" · first wrote {slack_date(held.known_since, '{date_short_pretty}')}" if held.known_since else ""
    )
    counts = [
        _plural(held.tickets, "ticket"),
        _plural(held.messages, "message") + f" ({held.raw_mails:,} with the original email)",
        _plural(held.attachments, "attachment"),
        _plural(held.surveys, "survey")
        + (f" ({held.survey_comments:,} with a comment)" if held.survey_comments else ""),
        _plural(held.auto_replies, "automatic reply", "automatic replies"),
        _plural(held.pages, "page"),
        _plural(held.events, "audit-log line"),
    ]
    flags = []
    if held.blocks:
        flags.append("their address is blocked as spam")
    if held.survey_opt_out:
        flags.append("they asked for no surveys")
    in_slack = (
        f"In Slack: {_plural(held.slack_posts, 'post')} show their text (ticket messages and thread "
        f"messages), {_plural(held.slack_files, 'file')} uploaded from their mail."
    )
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{who}*{since}"}})
    text = " · ".join(counts) + ("\n" + "; ".join(flags).capitalize() + "." if flags else "")
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{text}\n{in_slack}"}})
    rows = [
        f"{_ticket_link(t, team_url)} *{escape(truncate(t.subject or '(no subject)', 80))}* · "
        f"{STATUS_LABELS.get(t.status, escape(t.status))} · {_plural(t.messages, 'message')} · "
        f"{_plural(t.attachments, 'attachment')} · {slack_date(t.created_at, '{date_short_pretty}')}"
        for t in held.listed
    ]
    blocks.extend(packed_sections(rows)[:20])
    notes = []
    if held.tickets > len(held.listed):
        notes.append(f"The newest {len(held.listed)} of {held.tickets:,} tickets.")
    if manager:
        notes.append(
            f"`/support customer export {_address(held.address)}` sends you all of it as a ZIP; "
            f"`/support customer erase {_address(held.address)}` erases it."
        )
    if notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " ".join(notes)}]})
    return blocks


def export_on_its_way(address: str) -> str:
    return (
        f"Everything we hold about {_address(address)} is being gathered; the ZIP will be in your DMs "
        "with the bot in a moment (a large one takes longer)."
    )


def nothing_to_erase(address: str) -> str:
    return f"We hold nothing about {_address(address)}: there is nothing to erase."


def erase_modal(address: str, preview: ErasurePreview) -> dict[str, object]:
    """The confirmation: what will go, and the address typed again before anything does."""
    gone = [
        _plural(preview.tickets, "ticket"),
        _plural(preview.messages, "message") + " with their original emails",
        _plural(preview.attachments, "attachment record"),
        _plural(preview.surveys, "survey"),
        _plural(preview.auto_replies, "automatic-reply record"),
        _plural(preview.blocks, "spam block"),
    ]
    text = (
        f"This erases everything we hold about *{_address(address)}*:\n• "
        + "\n• ".join(gone)
        + f'\n• in Slack, {_plural(preview.slack_posts, "post")} replaced by an "erased on request" line '
        f"and {_plural(preview.files, 'file')} deleted"
    )
    after = (
        "It cannot be undone. The audit log keeps that an erasure happened, by you and when, but not "
        "the address. Their mail in the mailbox itself is handled as `ERASE_FROM_MAILBOX` says."
    )
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": after}]},
        {
            "type": "input",
            "block_id": CONFIRM_BLOCK,
            "label": {"type": "plain_text", "text": "Type the address to confirm"},
            "element": {
                "type": "plain_text_input",
                "action_id": CONFIRM_ACTION,
                "placeholder": {"type": "plain_text", "text": truncate(address, 150)},
            },
        },
    ]
    return modal(ERASE_CALLBACK, "Erase a customer", "Erase", blocks, {"address": address})


def confirmation_mismatch(address: str) -> str:
    return truncate(f"That is not the address. Type {address} exactly to erase it.", 150)


NO_ADDRESS_FORM = "This form does not say whose data it is for; close it and run the command again."


def _result(title: str, text: str) -> dict[str, object]:
    view = modal(
        ERASE_CALLBACK + "_done", title, "OK", [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    )
    view.pop("submit")
    view["close"] = {"type": "plain_text", "text": "Done"}
    return view


def erasing() -> dict[str, object]:
    return _result("Erasing…", "Erasing what we hold about this customer…")


def already_gone() -> dict[str, object]:
    return _result(
        "Nothing to erase", "Nothing is held about this customer any more: it was erased meanwhile."
    )


def erasure_done(started: ErasureStarted) -> dict[str, object]:
    """The modal's last page. It names no one: nothing said after an erasure may keep the address."""
    if started.already_running:
        return _result(
            "Already erasing", "An erasure of this customer is already under way; it finishes by itself."
        )
    return _result(
        "Customer erased",
        f"Erased: {_plural(started.preview.tickets, 'ticket')}, "
        f"{_plural(started.preview.messages, 'message')} and everything that hung on them. "
        f"The Slack posts and files follow over the next minutes ({started.effects:,} changes "
        "queued, finished after a restart too). The audit log records that you did it.",
    )

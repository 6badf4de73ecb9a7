"""Block Kit for `/oncall`: the rota table, my duties and time off, swap offers and their
DMs, the roster, the ledger and the calendar feeds. Plans and fairness are in
`oncall_plan`; the notices a change owes, in `oncall_notices`.

Times are Slack date tokens, so each reader sees them in their own time zone; the
fallback text (old clients, notifications) is in the team's TIMEZONE. Names and notes
people typed go through `escape`; user ids are rendered as mentions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.slack.render import Block, button, escape, fit, modal, packed_sections, truncate
from rota.ledger import LineView
from rota.store import DutyView, MemberView, TimeOffView
from rota.swaps import SwapView

# Action ids, and what each button's value carries.
ACTION_OFFER = "oncall_offer"  # a duty id: opens the swap modal with that duty chosen
ACTION_CANCEL_TIME_OFF = "oncall_time_off_cancel"  # a time off id
ACTION_ACCEPT = "oncall_swap_accept"  # a swap id, for the colleague
ACTION_DECLINE = "oncall_swap_decline"
ACTION_APPROVE = "oncall_swap_approve"  # a swap id, for managers
ACTION_REJECT = "oncall_swap_reject"
ACTION_WITHDRAW = "oncall_swap_withdraw"  # a swap id, for the people in it
ACTION_PUBLISH = "oncall_plan_publish"  # the previewed range's end, ISO 8601
ACTION_DISCARD = "oncall_plan_discard"

SWAP_CALLBACK = "oncall_swap_submit"
SWAP_DUTY_BLOCK = "duty"
SWAP_TO_BLOCK = "colleague"
SWAP_NOTE_BLOCK = "note"

# Slack allows 50 blocks in a message and 3,000 characters in a section.
_LINES_PER_SECTION = 15
_MAX_LINES = 120
_MAX_ITEMS = 15
_OPTION_LIMIT = 100

USAGE_LINES = {
    "": "`/oncall`: who is on call now, next, and the coming weeks",
    "me": "`/oncall me`: your duties, time off and swap requests",
    "away": "`/oncall away 2026-12-20 2027-01-02`: time off, first and last day (one date: one day)",
    "away_sync": "`/oncall away sync URL`: your time off follows your calendar · `/oncall away sync off`",
    "swap": "`/oncall swap`: offer one of your duties to a colleague · `/oncall swap 2026-12-21 @bob [note]`",
    "cover": "`/oncall cover [2026-12-21]`: take that night's duty (default: the one under way)",
    "comp": "`/oncall comp`: your compensation · `/oncall comp take 2026-12-27 [more dates]`",
    "ical": "`/oncall ical`: calendar feeds to subscribe to · `/oncall ical reset`: a new personal URL",
    "phone": "`/oncall phone +39 333 …`: your number for calls and SMS pages · `/oncall test`: page yourself",
    "plan": "`/oncall plan [WEEKS]`: preview the rota, then publish it",
    "fairness": "`/oncall fairness [DAYS]`: load per person, past and planned, and the balance score",
    "roster": "`/oncall roster` · `/oncall roster add @user` · `/oncall roster remove @user`",
    "weight": "`/oncall weight @user 0.5`: a part-timer's share of the load",
    "import": "`/oncall import`: bring a rota over from Opsgenie, PagerDuty, Grafana OnCall or a calendar",
    "away_for": "`/oncall away @user 2026-12-20 2027-01-02`: time off on someone's behalf",
    "comp_manage": "`/oncall comp all` · `/oncall comp adjust @user -0.5 reason…` · `/oncall comp export`",
}

ONCALL_USAGE = (
    "*`/oncall` commands*\n"
    + "\n".join(
        f"• {USAGE_LINES[k]}"
        for k in ("", "me", "away", "away_sync", "swap", "cover", "comp", "ical", "phone")
    )
    + "\n*Managers*\n"
    + "\n".join(
        f"• {USAGE_LINES[k]}"
        for k in ("plan", "import", "fairness", "roster", "weight", "away_for", "comp_manage")
    )
    + "\n• `/oncall help`: this list"
    # Slack hides a manual pause from apps (dnd.info's snooze_* is for the person only).
    + "\n_On call, keep notifications on: the bot sees a Do Not Disturb schedule but not a manual "
    "*Pause notifications*; a page nobody answers repeats, then goes to the backup._"
)


# -- small pieces -------------------------------------------------------------------


def when(moment: datetime, tz: ZoneInfo, token: str = "{date_short_pretty} {time}") -> str:
    """A moment in the reader's own time zone; the fallback is in `tz` (the team's)."""
    fallback = moment.astimezone(tz).strftime("%a %d %b %Y %H:%M %Z")
    return f"<!date^{int(moment.timestamp())}^{token}|{fallback}>"


def span(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    return f"{when(start, tz)} → {when(end, tz)}"


def plain_span(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    """For plain_text (select options), where date tokens are not rendered."""
    a, b = start.astimezone(tz), end.astimezone(tz)
    return f"{a:%a %d %b %H:%M} → {b:%a %d %b %H:%M}"


def holder(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id else "_nobody (unassigned)_"


def _moved(duty: DutyView) -> str:
    return " :pushpin:" if duty.origin in ("swap", "cover") else ""


def section(text: str, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": fit(text)}}
    if accessory is not None:
        block["accessory"] = accessory
    if block_id is not None:
        block["block_id"] = block_id
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, 150)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(text)}]}


def actions(block_id: str, *elements: Block) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": list(elements)}


def sections(lines: Sequence[str], *, more: str = "…and {n} more.") -> list[Block]:
    shown = list(lines[:_MAX_LINES])
    if len(lines) > _MAX_LINES:
        shown.append(more.format(n=len(lines) - _MAX_LINES))
    # Escaped notes and names can be long: pack by length as well as by count.
    return [
        block
        for i in range(0, len(shown), _LINES_PER_SECTION)
        for block in packed_sections(shown[i : i + _LINES_PER_SECTION])
    ]


def outcome_blocks(text: str) -> list[Block]:
    """What a clicked DM becomes: the outcome, no buttons left to click twice."""
    return [section(text)]


def number_text(value: float | Decimal) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def balance_text(score: float) -> str:
    return f"*{score:.2f}* (1.00 is perfectly even)"


# -- the rota -------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    now: datetime
    current: DutyView | None
    coming: tuple[DutyView, ...]  # from the one under way on
    weeks: int
    balance: float | None  # for managers only


def overview_blocks(view: Overview, tz: ZoneInfo) -> list[Block]:
    if not view.coming:
        return [section("No on-call rota is published yet. A manager publishes one with `/oncall plan`.")]
    blocks: list[Block] = []
    if view.current is not None:
        blocks.append(
            section(
                f":telephone_receiver: *On call now:* {holder(view.current.user_id)} "
                f"until {when(view.current.end, tz)}"
            )
        )
    else:
        blocks.append(section("Nobody is on call right now."))
    handover = view.current.end if view.current is not None else view.now
    upcoming = [d for d in view.coming if d.start >= handover]
    if upcoming:
        after = upcoming[0]
        blocks.append(section(f"*Next:* {holder(after.user_id)} from {when(after.start, tz)}"))
    blocks.append(header(f"The coming {view.weeks} weeks"))
    blocks.extend(
        sections([f"{span(d.start, d.end, tz)} · {holder(d.user_id)}{_moved(d)}" for d in view.coming])
    )
    notes = ":pushpin: swapped or covered."
    if view.balance is not None:
        notes += f" Balance score of this period: {balance_text(view.balance)}."
    blocks.append(context(notes))
    return blocks[:50]


# -- my duties, time off and requests ---------------------------------------------------


def time_off_text(off: TimeOffView) -> str:
    if off.first_day == off.last_day:
        return f"{off.first_day:%a %d %b %Y}"
    return f"{off.first_day:%a %d %b %Y} to {off.last_day:%a %d %b %Y}"


def offer_button(duty: DutyView) -> Block:
    return button("Offer to a colleague…", ACTION_OFFER, str(duty.id))


def duty_lines_with_offers(duties: Sequence[DutyView], tz: ZoneInfo) -> list[Block]:
    return [section(f"{span(d.start, d.end, tz)}{_moved(d)}", offer_button(d)) for d in duties[:_MAX_ITEMS]]


def time_off_block(off: TimeOffView, *, whose: str | None = None) -> Block:
    label = time_off_text(off) + (f" · {holder(whose)}" if whose else "")
    return section(f":palm_tree: {label}", button("Cancel", ACTION_CANCEL_TIME_OFF, str(off.id), "danger"))


def request_blocks(request: SwapView, user: str, tz: ZoneInfo) -> list[Block]:
    duty = span(request.duty.start, request.duty.end, tz)
    status = "waiting for a manager" if request.status == "awaiting_approval" else "waiting for an answer"
    if request.kind == "cover":
        text = f"You asked to cover {duty} (now {holder(request.from_user)}) · {status}"
        return [section(text, button("Withdraw", ACTION_WITHDRAW, str(request.id)))]
    if request.from_user == user:
        text = f"You offered {duty} to {holder(request.to_user)} · {status}"
        return [section(text, button("Withdraw", ACTION_WITHDRAW, str(request.id)))]
    text = f"{holder(request.from_user)} offers you {duty} · {status}"
    if request.status != "offered":
        return [section(text)]
    return [section(text), answer_buttons(request.id)]


def me_blocks(
    duties: Sequence[DutyView],
    time_off: Sequence[TimeOffView],
    requests: Sequence[SwapView],
    *,
    user: str,
    tz: ZoneInfo,
) -> list[Block]:
    blocks: list[Block] = [header("Your duties")]
    blocks.extend(duty_lines_with_offers(duties, tz) or [section("No duties coming up.")])
    blocks.append(header("Your time off"))
    blocks.extend([time_off_block(off) for off in time_off[:_MAX_ITEMS]] or [section("None recorded.")])
    if requests:
        blocks.append(header("Open swap requests"))
        for request in requests[:_MAX_ITEMS]:
            blocks.extend(request_blocks(request, user, tz))
    return blocks[:50]


def time_off_added_blocks(
    off: TimeOffView, clashes: Sequence[DutyView], tz: ZoneInfo, *, for_user: str | None = None
) -> list[Block]:
    whose = f"{holder(for_user)}'s" if for_user else "Your"
    blocks = [time_off_block(off) if for_user is None else section(f":palm_tree: {time_off_text(off)}")]
    blocks[0]["text"]["text"] = f"{whose} time off is recorded: {time_off_text(off)}."
    if not clashes:
        return blocks
    if for_user is None:
        blocks.append(section("You hold these duties in that time; offer each to a colleague:"))
        blocks.extend(duty_lines_with_offers(clashes, tz))
    else:
        lines = [f"• {span(d.start, d.end, tz)}" for d in clashes]
        blocks.append(
            section(
                f"{holder(for_user)} holds these duties in that time; they are told:\n" + "\n".join(lines)
            )
        )
    return blocks[:50]


def time_off_by_manager(
    off: TimeOffView, clashes: Sequence[DutyView], manager: str, tz: ZoneInfo
) -> tuple[str, list[Block]]:
    text = f"{holder(manager)} recorded time off for you: {time_off_text(off)}."
    blocks = [section(text, button("Cancel", ACTION_CANCEL_TIME_OFF, str(off.id), "danger"))]
    if clashes:
        blocks.append(section("You hold these duties in that time; offer each to a colleague:"))
        blocks.extend(duty_lines_with_offers(clashes, tz))
    return text, blocks[:50]


# -- swaps and covers -----------------------------------------------------------------


def swap_modal(duties: Sequence[DutyView], tz: ZoneInfo, selected: int | None = None) -> dict[str, Any]:
    options = [
        {
            "text": {"type": "plain_text", "text": truncate(plain_span(d.start, d.end, tz), 75)},
            "value": str(d.id),
        }
        for d in duties[:_OPTION_LIMIT]
    ]
    duty_select: Block = {"type": "static_select", "action_id": "duty", "options": options}
    chosen = next((o for o in options if o["value"] == str(selected)), None)
    if chosen is not None:
        duty_select["initial_option"] = chosen
    blocks: list[Block] = [
        {
            "type": "input",
            "block_id": SWAP_DUTY_BLOCK,
            "label": {"type": "plain_text", "text": "Your duty"},
            "element": duty_select,
        },
        {
            "type": "input",
            "block_id": SWAP_TO_BLOCK,
            "label": {"type": "plain_text", "text": "Colleague"},
            "element": {"type": "users_select", "action_id": "user"},
        },
        {
            "type": "input",
            "block_id": SWAP_NOTE_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": "Note"},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": True,
                "max_length": 500,
            },
        },
    ]
    return modal(SWAP_CALLBACK, "Offer a duty", "Offer", blocks)


def answer_buttons(swap_id: int) -> Block:
    return actions(
        "swap_answer",
        button("Accept", ACTION_ACCEPT, str(swap_id), "primary"),
        button("Decline", ACTION_DECLINE, str(swap_id)),
    )


def _note(swap: SwapView) -> str:
    return f"\n> {escape(truncate(swap.note, 500))}" if swap.note else ""


def swap_offer_dm(swap: SwapView, tz: ZoneInfo) -> tuple[str, list[Block]]:
    duty = span(swap.duty.start, swap.duty.end, tz)
    text = f"{holder(swap.from_user)} asks you to take their on-call duty {duty}."
    blocks = [section(text + _note(swap))]
    if swap.expires_at is not None:
        blocks.append(context(f"The offer expires {when(swap.expires_at, tz)}."))
    blocks.append(answer_buttons(swap.id))
    return text, blocks


def approval_dm(swap: SwapView, tz: ZoneInfo) -> tuple[str, list[Block]]:
    duty = span(swap.duty.start, swap.duty.end, tz)
    if swap.kind == "cover":
        text = f"{holder(swap.to_user)} asks to cover {holder(swap.from_user)}'s on-call duty {duty}."
    else:
        text = f"{holder(swap.from_user)} and {holder(swap.to_user)} agreed to swap the on-call duty {duty}."
    blocks = [
        section(text + " It needs a manager's approval." + _note(swap)),
        actions(
            "swap_decision",
            button("Approve", ACTION_APPROVE, str(swap.id), "primary"),
            button("Reject", ACTION_REJECT, str(swap.id), "danger"),
        ),
    ]
    return text, blocks


def duty_text(duty: DutyView, tz: ZoneInfo) -> str:
    return span(duty.start, duty.end, tz)


# -- roster, ledger, feeds ---------------------------------------------------------------


def roster_blocks(members: Sequence[MemberView]) -> list[Block]:
    lines = [
        f"{holder(m.user_id)} {escape(truncate(m.name, 100))} · weight {number_text(m.weight)} · {m.tz.key}"
        + ("" if m.active else " · _off the rota_")
        for m in members
    ]
    blocks: list[Block] = [header("On-call roster")]
    blocks.extend(
        sections(lines) if lines else [section("Nobody yet: the roster follows the support staff.")]
    )
    blocks.append(
        context("`/oncall weight @user 0.5` · `/oncall roster remove @user` · `/oncall roster add @user`")
    )
    return blocks


def _amount(amount: Decimal, unit: str) -> str:
    number = f"{amount:+.2f}" if amount else "0"
    return f"{number} {'days' if unit == 'days' else unit}"


def comp_blocks(
    balances: Mapping[str, Decimal], lines: Sequence[LineView], tz: ZoneInfo, default_unit: str
) -> list[Block]:
    shown = (
        ", ".join(f"*{_amount(v, u)}*" for u, v in sorted(balances.items()))
        or f"*{_amount(Decimal(0), default_unit)}*"
    )
    blocks: list[Block] = [section(f"Your compensation balance: {shown}")]
    if lines:
        rows = [
            f"{when(line.at, tz, '{date_short}')} · {line.kind} · {_amount(line.signed, line.unit)}"
            + (f" · {escape(truncate(line.note, 120))}" if line.note else "")
            for line in lines
        ]
        blocks.append(header("Latest entries"))
        blocks.extend(sections(rows))
    return blocks[:50]


def comp_all_blocks(balances: Mapping[tuple[str, str], Decimal], names: Mapping[str, str]) -> list[Block]:
    rows = [
        f"{holder(user)} {escape(truncate(names.get(user, ''), 100))}: *{_amount(amount, unit)}*"
        for (user, unit), amount in sorted(balances.items())
    ]
    blocks: list[Block] = [header("Compensation balances")]
    blocks.extend(sections(rows) if rows else [section("The ledger is empty.")])
    blocks.append(context("`/oncall comp export` sends the whole ledger as CSV."))
    return blocks[:50]


def ical_blocks(personal: str | None, team: str) -> list[Block]:
    blocks: list[Block] = []
    if personal:
        blocks.append(section(f"*Your duties:* <{personal}>"))
    blocks.append(section(f"*The whole rota:* <{team}>"))
    blocks.append(
        context(
            "Subscribe from your calendar app (Google: Other calendars → From URL; Apple/Outlook: "
            "subscribe to calendar). Keep the links private; `/oncall ical reset` gives you a new one."
        )
    )
    return blocks

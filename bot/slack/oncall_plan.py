"""Block Kit for planning: the preview with its Publish button, the published summary and
each person's changes, and the fairness table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.slack.oncall import (
    ACTION_DISCARD,
    ACTION_PUBLISH,
    actions,
    balance_text,
    button,
    context,
    header,
    holder,
    number_text,
    section,
    sections,
    span,
    when,
)
from bot.slack.render import Block, escape
from rota.notices import PlanChangesNotice
from rota.planner import Why
from rota.standing import FairnessReport, PersonLoad
from rota.store import DutyChange, PlanPreview


def change_line(change: DutyChange, tz: ZoneInfo) -> str:
    return f"{span(change.start, change.end, tz)}: {holder(change.before)} → {holder(change.after)}"


def why_lines(why: Why | None) -> str:
    if why is None:
        return ""
    lines = [escape(why.summary)]
    for note in why.candidates:
        detail = f" ({escape(note.excluded)})" if note.excluded else f" → {note.normalised_if_chosen:.1f}"
        lines.append(f"   ◦ {holder(note.person)}: {note.normalised_load:.1f}{detail}")
    return "\n".join(lines)


def plan_preview_blocks(preview: PlanPreview, weeks: int, tz: ZoneInfo) -> list[Block]:
    blocks: list[Block] = [header(f"Rota plan: the next {weeks} weeks (preview)")]
    blocks.append(
        section(
            f"Until {when(preview.until, tz)} · {len(preview.changes)} duties change · "
            f"balance score {balance_text(preview.balance)}"
        )
    )
    if preview.changes:
        blocks.extend(sections([change_line(c, tz) for c in preview.changes]))
    else:
        blocks.append(section("Nothing would change: the published rota already is this plan."))
    unassigned = [a for a in preview.plan.unassigned if a.planned]
    if unassigned:
        lines = [
            f":warning: {span(a.duty.start, a.duty.end, tz)} stays *unassigned*: {why_lines(a.why)}"
            for a in unassigned[:8]
        ]
        if len(unassigned) > 8:
            lines.append(f"…and {len(unassigned) - 8} more unassigned.")
        blocks.extend(section(line) for line in lines)
    blocks = blocks[:47]
    blocks.append(
        actions(
            "plan_decision",
            button("Publish", ACTION_PUBLISH, preview.until.isoformat(), "primary"),
            button("Discard", ACTION_DISCARD, preview.until.isoformat()),
        )
    )
    return blocks


def published_summary(
    changes: Sequence[DutyChange], until: datetime, balance: float, manager: str, tz: ZoneInfo
) -> tuple[str, list[Block]]:
    text = (
        f":calendar: {holder(manager)} published the on-call rota "
        f"until {when(until, tz, '{date_short_pretty}')}: "
        f"{len(changes)} duties changed."
    )
    blocks = [section(text + f" Balance score {balance_text(balance)}.")]
    blocks.extend(sections([change_line(c, tz) for c in changes])[:40])
    blocks.append(context("`/oncall` shows the rota; `/oncall me` your duties."))
    return text, blocks[:50]


def changes_for_person(notice: PlanChangesNotice, tz: ZoneInfo) -> tuple[str, list[Block]]:
    gained, lost = notice.gained, notice.lost
    text = f"{holder(notice.actor)} published a new on-call rota, with changes for you."
    blocks = [section(text)]
    if gained:
        blocks.extend(sections(["*You hold:*", *(f"• {span(c.start, c.end, tz)}" for c in gained)])[:20])
    if lost:
        blocks.extend(
            sections(
                [
                    "*No longer yours:*",
                    *(f"• {span(c.start, c.end, tz)} (now {holder(c.after)})" for c in lost),
                ]
            )[:20]
        )
    blocks.append(context("Can't make one? `/oncall me` lets you offer it to a colleague."))
    return text, blocks[:50]


# -- fairness ------------------------------------------------------------------------------


def fairness_blocks(report: FairnessReport) -> list[Block]:
    days = report.days
    lines = [
        f"{holder(r.user_id)}"
        + (f" (weight {number_text(r.weight)})" if r.weight != 1 else "")
        + f": last {days} days *{r.past:.1f}* · planned *{r.planned:.1f}* · total *{r.total:.1f}*"
        + _against_share(report, r)
        for r in sorted(report.rows, key=lambda r: (-r.total, r.user_id))
    ]
    blocks: list[Block] = [header("Fairness: normalised load per person")]
    blocks.extend(sections(lines) if lines else [section("Nobody is on the rota.")])
    blocks.append(
        section(
            f"Balance score: last {days} days {balance_text(report.past_balance)}"
            f" · planned {balance_text(report.planned_balance)}"
            f" · together {balance_text(report.total_balance)}"
        )
    )
    blocks.append(
        context(
            "Load is weighted hours on call (weeknight, weekend, holiday) divided by the weight."
            f" Fair share: *{report.fair_share:.1f}*, the period's load split by weight; who is under"
            " it is owed duty-free time."
        )
    )
    return blocks[:50]


def _against_share(report: FairnessReport, row: PersonLoad) -> str:
    gap = report.ahead_of_share(row)
    if abs(gap) < 0.05:
        return " · at the fair share"
    duties = report.duties_ahead(row)
    about = ""
    if duties is not None:
        count = abs(duties)
        about = f" (about {count:.1f} {'duty' if round(count, 1) == 1 else 'duties'})"
    return f" · *{abs(gap):.1f} {'over' if gap > 0 else 'under'}* the fair share{about}"

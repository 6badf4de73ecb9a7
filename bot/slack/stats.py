"""Block Kit for `/support stats` and the managers' App Home: the figures of a period,
for the team (managers) or for one person (their own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from bot.slack.render import Block, escape, truncate
from bot.stats.figures import Durations, Spread
from bot.stats.report import PersonFigures, StatsReport

# Slack refuses a section whose text passes 3,000 characters; keep well within.
_SECTION_LIMIT = 2800

STATS_USAGE = (
    "Use `/support stats` (the last 7 days), `/support stats week|month|quarter` "
    "(the last 7, 30 or 90 days) or `/support stats 2026-01-01 2026-03-31` (first and last day)."
)
EXPORT_USAGE = (
    "Use `/support export tickets|events|rota|ledger [week|month|quarter|FIRST LAST]`, "
    "e.g. `/support export tickets month`."
)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes // (24 * 60)} d {(minutes // 60) % 24} h"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, 150)}}


def _fields(*pairs: tuple[str, str]) -> Block:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in pairs[:10]],
    }


def _text(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _lines(title: str, lines: Sequence[str]) -> list[Block]:
    """`lines` under a bold title, split over as many sections as Slack's length limit needs."""
    blocks: list[Block] = []
    chunk = f"*{title}*"
    for line in lines:
        if len(chunk) + len(line) + 1 > _SECTION_LIMIT:
            blocks.append(_text(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    blocks.append(_text(chunk))
    return blocks


def _spread(spread: Spread) -> str:
    return f"median {duration(spread.median)} · 90% within {duration(spread.p90)}"


def _times(label: str, times: Durations) -> tuple[str, str]:
    if not times.business.count:
        return label, "no tickets yet"
    return (
        f"{label} ({times.business.count})",
        f"{_spread(times.business)} in business hours\n{_spread(times.calendar)} on the clock",
    )


def _change(count: int, previous: int) -> str:
    diff = count - previous
    if previous == 0:
        return "new" if count else "–"
    sign = "+" if diff >= 0 else "−"
    return f"{sign}{abs(diff)}, {sign}{abs(diff) / previous:.0%}"


def _balance(balances: Mapping[str, Decimal]) -> str:
    parts = []
    for unit, amount in sorted(balances.items()):
        shown = f"{amount.quantize(Decimal('0.01')):+f}"
        parts.append(f"{shown} days" if unit == "days" else f"{shown} {escape(unit)}")
    return ", ".join(parts)


def person_line(figures: PersonFigures) -> str:
    parts = [f"<@{figures.user}>", f"handled {figures.handled}", f"{figures.replies} replies"]
    if figures.answered:
        parts.append(f"solved {percent(figures.satisfaction)} ({figures.solved}/{figures.answered})")
    if figures.on_call.duties:
        parts.append(f"on call {figures.on_call.duties}× for {figures.on_call.hours:.0f} h")
    if figures.pages:
        ack = f", acknowledged in {duration(figures.ack_median)} (median)" if figures.acknowledged else ""
        parts.append(f"{figures.pages} page{'s' if figures.pages != 1 else ''}{ack}")
    if figures.balances:
        parts.append(f"owed {_balance(figures.balances)}")
    return " · ".join(parts)


def _comments(report: StatsReport, agent: str | None = None) -> list[Block]:
    comments = [c for c in report.comments if agent is None or c.agent == agent]
    if not comments:
        return []
    lines = []
    for c in comments:
        verdict = ":white_check_mark:" if c.solved else ":x:" if c.solved is False else ""
        lines.append(f"{verdict} #{c.number}: _{escape(truncate(' '.join(c.comment.split()), 300))}_")
    return _lines("Latest comments", lines)


def team_blocks(report: StatsReport, *, charts_coming: bool = True) -> list[Block]:
    """Everything a manager sees for the period."""
    blocks: list[Block] = [
        _header(f"Support stats, {report.period.label()}"),
        _fields(
            ("Created", str(report.created)),
            (
                "Resolved",
                f"{report.resolved}" + (f" ({report.reopened} reopened)" if report.reopened else ""),
            ),
            ("Backlog", f"{report.backlog_start} → {report.backlog_end}"),
            ("No reply yet", str(report.unanswered)),
            _times("First response", report.first_response),
            _times("Resolution", report.resolution),
        ),
        _fields(
            (
                "Satisfaction",
                f"{percent(report.satisfaction)} solved ({report.solved} of {report.answered} answers)"
                if report.answered
                else "no answers yet",
            ),
            ("Rota balance", "–" if report.balance is None else f"{report.balance:.2f} (1.00 is even)"),
        ),
        *_comments(report),
    ]
    if report.tags:
        blocks += _lines(
            "Top tags (change against the period before)",
            [f"`{escape(t.name)}` {t.count} ({_change(t.count, t.previous)})" for t in report.tags],
        )
    people = sorted(report.people.values(), key=lambda p: (-p.handled, -p.on_call.hours, p.user))
    if people:
        blocks.append({"type": "divider"})
        blocks += _lines("People", [person_line(p) for p in people])
    if report.templates:
        lines = []
        for t in report.templates[:15]:
            line = f"`{escape(t.name)}` {t.replies} replies on {t.tickets} tickets"
            if t.close_rate is not None:
                line += f" · closes {percent(t.close_rate)} of {t.close_uses}"
            lines.append(line)
        blocks += _lines("Templates", lines)
        blocks.append(
            _context(
                "A close rate counts the period's replies older than `CLOSE_RATE_DAYS`: "
                "resolved within that time, with no word from the customer."
            )
        )
    notes = (
        "Business hours follow `BUSINESS_HOURS`; “90% within” is the 90th percentile. "
        "A reopened ticket's resolution time runs to its last resolution."
    )
    if report.spam:
        notes += f" {report.spam} ticket{'s' if report.spam != 1 else ''} marked as spam left out."
    if charts_coming:
        notes += " Charts are on their way to your DMs."
    blocks.append(_context(notes))
    return blocks[:50]


def personal_blocks(report: StatsReport, user: str) -> list[Block]:
    """A staff member's own figures, and nothing about anyone else."""
    me = report.person(user)
    on_call = (
        f"{me.on_call.duties} duties, {me.on_call.hours:.0f} h after hours" if me.on_call.duties else "none"
    )
    pages = "none"
    if me.pages:
        pages = f"{me.pages}" + (
            f", acknowledged in {duration(me.ack_median)} (median)" if me.acknowledged else ""
        )
    blocks: list[Block] = [
        _header(f"Your stats, {report.period.label()}"),
        _fields(
            ("Tickets handled", str(me.handled)),
            ("Replies sent", str(me.replies)),
            (
                "Satisfaction",
                f"{percent(me.satisfaction)} solved ({me.solved} of {me.answered})"
                if me.answered
                else "no answers yet",
            ),
            ("On call", on_call),
            ("Pages", pages),
            ("Compensation owed", _balance(me.balances) or "nothing"),
        ),
        *_comments(report, agent=user),
        _context("Managers see the team's figures; you see your own."),
    ]
    return blocks


def home_blocks(report: StatsReport) -> list[Block]:
    """The managers' App Home: the last days at a glance."""
    return [
        _header(f"Last {report.period.length} days"),
        _fields(
            ("Created · resolved", f"{report.created} · {report.resolved}"),
            ("Backlog now", str(report.backlog_end)),
            ("First response (median)", f"{duration(report.first_response.business.median)} business"),
            ("Satisfaction", percent(report.satisfaction)),
        ),
        _context("`/support stats` for the full figures and charts; `/support export` for CSV."),
        {"type": "divider"},
    ]

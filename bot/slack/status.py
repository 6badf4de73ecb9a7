"""What `/support status` shows: the mailbox, outgoing mail, Slack delivery, the leader,
the version and how Slack reaches the bot. Read from bot/health/status.py's report."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.config import Settings
from bot.health.connections import Service
from bot.health.status import LaneState, ServiceState, StatusReport
from bot.slack.health_notices import advice, cause, where
from bot.slack.paging import duration
from bot.slack.render import Block, escape, fit, slack_date, truncate

_LANE_NAMES = {"slack": "Slack posts and DMs", "files": "Attachment uploads", "smtp": "Outgoing mail queue"}


def _since(moment: datetime, now: datetime) -> str:
    return f"{slack_date(moment)} ({duration(max(now - moment, timedelta()))} ago)"


def _connection(settings: Settings, state: ServiceState, now: datetime, *, mail_label: str) -> str:
    lines: list[str] = []
    if state.failing_since is not None:
        kind = state.error_kind or "other"
        told = " · the channel was told" if state.notified else ""
        lines.append(f":red_circle: *Failing* since {_since(state.failing_since, now)}: {cause(kind)}{told}")
        if state.last_error:
            lines.append(f"_The server said:_ {escape(truncate(state.last_error, 300))}")
        lines.append(f"*What to do:* {advice(settings, state.service, kind, state.last_error or '')}")
        if state.last_success_at is not None:
            lines.append(f"Last worked {_since(state.last_success_at, now)}")
    elif state.last_success_at is not None:
        lines.append(f":large_green_circle: *Working*: connected {_since(state.last_success_at, now)}")
    else:
        lines.append(":white_circle: *Not tried yet* by the leader since it started")
    seen = _since(state.last_mail_at, now) if state.last_mail_at is not None else "none yet"
    lines.append(f"{mail_label}: {seen}")
    return "\n".join(lines)


def _lane(lane: LaneState, now: datetime) -> str:
    name = _LANE_NAMES.get(lane.kind, lane.kind)
    waiting = f"{lane.waiting} waiting"
    if lane.oldest_waiting is not None:
        waiting += f" (oldest queued {_since(lane.oldest_waiting, now)})"
    failed = f":x: {lane.failed} failed" if lane.failed else "none failed"
    return f"• {name}: {waiting}, {failed}"


def status_blocks(
    report: StatusReport, settings: Settings, now: datetime, *, version: str
) -> tuple[str, list[Block]]:
    mailbox = _connection(settings, report.mailbox, now, mail_label="Last mail seen")
    outgoing = _connection(settings, report.outgoing_mail, now, mail_label="Last reply sent")
    if report.leader is None:
        leader = ":warning: No replica has said it leads yet."
    else:
        who = escape(report.leader.replica)
        mine = " (this one)" if report.leader.replica == report.this_replica else ""
        leader = f"`{who}`{mine} leads, since {_since(report.leader.since, now)}"
        if report.leader.stale:
            leader = (
                f":warning: No word from the leader since {_since(report.leader.seen_at, now)}"
                f" (last: `{who}`): the mailbox, the outbox and the scheduler may be stopped."
            )
    mode = "Socket Mode" if settings.socket_mode else "HTTP (Slack calls /slack/events)"
    sections = [
        (
            "Mailbox",
            f"{escape(where(settings, Service.MAILBOX))}, folder {escape(settings.imap_folder)}",
            mailbox,
        ),
        ("Outgoing mail", escape(where(settings, Service.OUTGOING_MAIL)), outgoing),
        ("Slack delivery", "the outbox", "\n".join(_lane(lane, now) for lane in report.lanes)),
        ("Replicas", "who runs the mailbox, the outbox and the scheduler", leader),
    ]
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": "supportbot status"}}]
    for title, detail, body in sections:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": fit(f"*{title}* ({detail})\n{body}")}}
        )
    footer = f"supportbot {escape(version)} · {mode} · answered by `{escape(report.this_replica)}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    failing = [s for s in (report.mailbox, report.outgoing_mail) if s.failing_since is not None]
    summary = "supportbot status: " + (
        "; ".join(f"{s.service} failing" for s in failing) if failing else "mail connections working"
    )
    return summary, blocks

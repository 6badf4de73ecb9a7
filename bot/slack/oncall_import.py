"""Block Kit for calendars from outside: the import modal and its preview (Publish, with or
without history, or Cancel), and the DM when a feed's absence clashes with duties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from bot.slack.oncall import (
    actions,
    context,
    duty_lines_with_offers,
    header,
    section,
    sections,
    time_off_text,
)
from bot.slack.oncall_plan import change_line
from bot.slack.render import Block, button, escape, slack_date, truncate
from rota.ical_import import ImportPreview
from rota.time_off_feeds import AbsenceNews, FeedFailing, FeedView

IMPORT_CALLBACK = "oncall_import"
IMPORT_URL_BLOCK = "import_url"
IMPORT_FILE_BLOCK = "import_file"
ACTION_IMPORT_PUBLISH = "oncall_import_publish"
ACTION_IMPORT_FUTURE_ONLY = "oncall_import_future_only"
ACTION_IMPORT_CANCEL = "oncall_import_cancel"


def import_modal() -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": IMPORT_CALLBACK,
        "title": {"type": "plain_text", "text": "Import a rota"},
        "submit": {"type": "plain_text", "text": "Preview"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(
                "Give the calendar of your Opsgenie, PagerDuty or Grafana OnCall schedule (or a shared "
                "Google or Outlook calendar): its address, or an exported `.ics` file. You see what "
                "would change before anything does."
            ),
            {
                "type": "input",
                "block_id": IMPORT_URL_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Calendar address (https:// or webcal://)"},
                "element": {"type": "url_text_input", "action_id": "url"},
            },
            {
                "type": "input",
                "block_id": IMPORT_FILE_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "…or an .ics file"},
                "element": {"type": "file_input", "action_id": "file", "filetypes": ["ics"], "max_files": 1},
            },
        ],
    }


def import_preview_blocks(preview: ImportPreview, tz: ZoneInfo) -> list[Block]:
    value = str(preview.import_id)
    blocks: list[Block] = [header("Rota import (preview)")]
    blocks.append(
        section(
            f"From {escape(preview.source)}: {len(preview.future)} coming duties change · "
            f"{len(preview.history)} past duties to add as history"
        )
    )
    if preview.future:
        blocks.extend(sections([change_line(c, tz) for c in preview.future])[:15])
        blocks.append(context("Imported duties are pinned: `/oncall plan` keeps them."))
    if preview.history:
        blocks.append(section("*Past duties the rota lacks:*"))
        blocks.extend(sections([change_line(c, tz) for c in preview.history])[:10])
        blocks.append(
            context(
                "With history, they count for fairness and earn compensation like any duty held. "
                "Without, only the coming duties are imported."
            )
        )
    if preview.unassigned:
        blocks.append(
            section(f"{preview.unassigned} coming duties stay unassigned: `/oncall plan` fills them.")
        )
    for clash in preview.clashes[:5]:
        blocks.append(
            section(
                f":warning: {change_line(clash.duty, tz)} falls in their time off "
                f"{time_off_text(clash.time_off)}."
            )
        )
    if preview.unmatched:
        names = ", ".join(f"`{escape(truncate(u, 60))}`" for u in preview.unmatched[:15])
        more = f" and {len(preview.unmatched) - 15} more" if len(preview.unmatched) > 15 else ""
        blocks.append(section(f":grey_question: Nobody on the rota matches {names}{more}: left out."))
    if not preview.future and not preview.history:
        blocks.append(section("Nothing would change: the rota already holds this calendar."))
    blocks = blocks[:46]
    buttons = [button("Publish with history", ACTION_IMPORT_PUBLISH, value, "primary")]
    if preview.history:
        buttons.append(button("Publish without history", ACTION_IMPORT_FUTURE_ONLY, value))
    buttons.append(button("Cancel", ACTION_IMPORT_CANCEL, value))
    blocks.append(actions("import_decision", *buttons))
    return blocks


def absence_clash(news: AbsenceNews, tz: ZoneInfo) -> tuple[str, list[Block]]:
    verb = "moved" if news.moved else "shows"
    text = f"Your calendar {verb} you away {time_off_text(news.time_off)}, and you hold duties then."
    blocks = [section(text), section("Offer each to a colleague:"), *duty_lines_with_offers(news.clashes, tz)]
    return text, blocks[:50]


def feed_status(feed: FeedView | None) -> str:
    if feed is None:
        return "No calendar of yours is followed. `/oncall away sync URL` follows one."
    if feed.last_read_at is None:
        status = "not read yet; it will be within a few minutes"
    elif feed.last_error:
        since = feed.failing_since or feed.last_read_at
        status = (
            f"the last read, {slack_date(feed.last_read_at)}, failed: {escape(feed.last_error)}"
            f" (failing since {slack_date(since)})"
        )
    else:
        status = f"last read {slack_date(feed.last_read_at)}, read hourly"
    return (
        f"Your time off follows {escape(feed.label)}: {status}. `/oncall away sync URL` gives"
        " it a new address, `/oncall away sync off` stops it."
    )


def feed_failing(failing: FeedFailing) -> str:
    """Told once when a feed fails from its first read (a wrong address), or has failed for
    days (its address probably changed)."""
    whose = "Your calendar" if failing.owner else "The team's calendar of absences"
    if failing.never_read:
        said = f":warning: {whose} {escape(failing.label)} could not be read: {escape(failing.error)}. "
        if failing.owner:
            return said + "Check the address and give it again with `/oncall away sync URL`."
        return said + "Check its address in `TIME_OFF_ICAL_URLS`."
    said = (
        f":warning: {whose} {escape(failing.label)} could not be read since"
        f" {slack_date(failing.since)}: {escape(failing.error)}. Time off from it stays as of its"
        " last good read. "
    )
    if failing.owner:
        return said + (
            "Calendar apps change the secret address when it is reset: give the new one with"
            " `/oncall away sync URL`, or stop with `/oncall away sync off`."
        )
    return said + "Check its address in `TIME_OFF_ICAL_URLS`."


def unmatched_line(unmatched: Sequence[str]) -> str:
    return ", ".join(escape(truncate(u, 60)) for u in unmatched[:10])

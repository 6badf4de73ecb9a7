"""`/support stats` and `/support export`: figures, charts and CSV for managers, and each
staff member's own figures; the managers' stats block on App Home.

Figures answer at once (ephemeral); charts and CSV files follow as Slack files in the
asker's DM, never in the channel they asked from, where colleagues would see them.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.services import Services
from bot.slack import stats as ui
from bot.slack.render import Block
from bot.stats import exports
from bot.stats.period import Period, PeriodError, parse_period
from bot.stats.report import StatsConfig, StatsReport, build_report
from handlers.access import Access
from handlers.common import read_domain

log = logging.getLogger(__name__)

# The App Home's summary covers the last week.
HOME_DAYS = "week"


def stats_config(services: Services) -> StatsConfig:
    settings = services.settings
    return StatsConfig(settings.calendar(), settings.rota_weights, settings.close_rate_days)


def _report(services: Services, period: Period, *, full: bool = True) -> StatsReport:
    config = stats_config(services)
    now = services.clock.now()
    return read_domain(services, lambda session: build_report(session, period, now, config, full=full))


def _dm(client: Any, user: str) -> str:
    # Files go to a conversation, not a user id: open (or find) the DM first.
    return str(client.conversations_open(users=user)["channel"]["id"])


def support_command(
    services: Services, access: Access, verb: str, ack: Any, client: Any, user: str, args: list[str]
) -> None:
    """`/support stats …` or `/support export …`, for the dispatcher in handlers/commands.py."""
    if verb == "export":
        export(services, access, ack, client, user, args)
    else:
        stats(services, access, ack, client, user, args)


def stats(services: Services, access: Access, ack: Any, client: Any, user: str, args: list[str]) -> None:
    tz = services.settings.timezone
    try:
        period = parse_period(args, services.clock.now(), tz)
    except PeriodError as exc:
        ack(text=f"{exc}\n{ui.STATS_USAGE}")
        return
    manager = access.is_manager(user)
    try:
        report = _report(services, period)
    except Exception:
        log.exception("/support stats failed")
        ack(text="Sorry, the stats could not be worked out; it is logged. Try again in a moment.")
        return
    if not manager:
        ack(text=f"Your stats, {period.label()}", blocks=ui.personal_blocks(report, user))
        return
    ack(text=f"Support stats, {period.label()}", blocks=ui.team_blocks(report))
    try:
        _send_charts(services, client, user, report)
    except SlackApiError:
        log.exception("/support stats: uploading the charts failed")
        _tell(client, user, "Sorry, Slack refused the charts just now; please ask again.")
    except Exception:
        log.exception("/support stats: drawing the charts failed")
        _tell(client, user, "Sorry, the charts could not be drawn; it is logged.")


def _send_charts(services: Services, client: Any, user: str, report: StatsReport) -> None:
    # matplotlib takes a second to import: only the first manager's request pays, after the ack.
    from bot.stats.charts import report_charts

    wanted = {u for u, p in report.people.items() if p.on_call.duties or p.pages}
    # services.names: one cache of Slack names for every request, not a users.info call per person.
    names = {u: report.names.get(u) or services.names.name(u) for u in wanted}
    charts = report_charts(report, names)
    client.files_upload_v2(
        channel=_dm(client, user),
        file_uploads=[{"content": c.png, "filename": c.filename, "title": c.title} for c in charts],
        initial_comment=f"Charts for {report.period.label()}.",
    )


def export(services: Services, access: Access, ack: Any, client: Any, user: str, args: list[str]) -> None:
    if not access.is_manager(user):
        ack(text=access.refusal("manager"))
        return
    kind = args[0].lower() if args else ""
    if kind not in exports.EXPORT_KINDS:
        ack(text=f"Export what? {ui.EXPORT_USAGE}")
        return
    try:
        period = parse_period(args[1:], services.clock.now(), services.settings.timezone)
    except PeriodError as exc:
        ack(text=f"{exc}\n{ui.EXPORT_USAGE}")
        return
    filename = f"support-{kind}-{period.first_day:%Y%m%d}-{period.last_day:%Y%m%d}.csv"
    # A quarter of events is a large file: answer Slack first, then build and send it.
    ack(text=f"The {kind} of {period.label()} are on their way to your DMs as `{filename}`.")
    config = stats_config(services)
    try:
        content = read_domain(
            services,
            lambda session: exports.export_csv(
                kind, session, period.start, period.end, config.calendar, config.weights
            ),
        )
        client.files_upload_v2(
            channel=_dm(client, user),
            content=content,
            filename=filename,
            title=f"Support {kind}, {period.label()}",
            initial_comment=f"The {kind} of {period.label()} (times in UTC).",
        )
    except SlackApiError:
        log.exception("/support export %s: the upload failed", kind)
        _tell(client, user, "Sorry, Slack refused the export just now; please ask again.")
    except Exception:
        log.exception("/support export %s failed", kind)
        _tell(client, user, "Sorry, the export could not be made; it is logged.")


def _tell(client: Any, user: str, text: str) -> None:
    try:
        client.chat_postMessage(channel=user, text=text)
    except SlackApiError:
        log.exception("could not tell %s: %s", user, text)


def home_blocks(services: Services, access: Access, user: str) -> list[Block]:
    """The stats block at the top of a manager's App Home; nothing for anyone else."""
    if not access.is_manager(user):
        return []
    try:
        period = parse_period([HOME_DAYS], services.clock.now(), services.settings.timezone)
        return ui.home_blocks(_report(services, period, full=False))
    except Exception:
        # The home tab must open even when the stats can't be worked out.
        log.exception("stats for App Home failed")
        return []

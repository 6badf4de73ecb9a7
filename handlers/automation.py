"""`/support automation`: template close rates, and managers switching proven templates to automatic.

/support automation              close rates, with Automate… / Turn off buttons
/support automation off NAME     stop sending NAME automatically, at once
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack import after_hours as blocks
from bot.slack.modals import state_value
from bot.slack.render import escape
from bot.tickets.automation import (
    AutomationError,
    automations,
    close_rates,
    disable_automation,
    enable_automation,
)
from handlers.access import Access, acting_user, guarded, tell
from handlers.common import action_value, run_domain, view_metadata

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services

USAGE = "Use `/support automation` to see close rates, or `/support automation off NAME`."


def automation_command(services: Services, access: Access, ack: Any, user: str, args: list[str]) -> None:
    """Everything after `/support automation`."""
    if not access.is_manager(user):
        ack(text=access.refusal("manager"))
        return
    if not args:
        ack(text="Template close rates", blocks=overview(services))
        return
    if args[0].lower() == "off" and len(args) == 2:
        try:
            turn_off(services, args[1], user)
        except AutomationError as exc:
            ack(text=str(exc))
            return
        ack(text=f"`{escape(args[1])}` is no longer sent automatically.", blocks=overview(services))
        return
    ack(text=USAGE)


def overview(services: Services) -> list[dict[str, Any]]:
    settings = services.settings
    now = services.clock.now()
    stats, automated = run_domain(
        services, lambda s: (close_rates(s, now, days=settings.close_rate_days), automations(s))
    )
    return blocks.automation_blocks(
        stats,
        automated,
        min_uses=settings.automation_min_uses,
        min_rate=settings.automation_min_close_rate,
        days=settings.close_rate_days,
    )


def turn_off(services: Services, name: str, user: str) -> None:
    now = services.clock.now()
    run_domain(services, lambda s: disable_automation(s, name=name, user=user, now=now))


def register(app: App, services: Services, access: Access) -> None:
    def open_modal(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        name = action_value(body)
        now = services.clock.now()
        days = services.settings.close_rate_days
        stats, current = run_domain(
            services,
            lambda s: (
                next((x for x in close_rates(s, now, days=days) if x.name == name), None),
                next((a for a in automations(s) if a.name == name), None),
            ),
        )
        client.views_open(trigger_id=body["trigger_id"], view=blocks.automation_modal(name, stats, current))

    def off_clicked(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        name = action_value(body)
        try:
            turn_off(services, name, acting_user(body))
        except AutomationError as exc:
            tell(client, body, str(exc))
            return
        tell(client, body, f":octagonal_sign: `{escape(name)}` is no longer sent automatically.")

    def submitted(ack: Any, body: dict[str, Any], client: Any) -> None:
        view = body["view"]
        name = str(view_metadata(body).get("name") or "")
        when = state_value(view, blocks.WHEN_BLOCK) or ""
        kind = state_value(view, blocks.MATCH_KIND_BLOCK) or ""
        pattern = (state_value(view, blocks.PATTERN_BLOCK) or "").strip()
        user = acting_user(body)
        now = services.clock.now()
        try:
            automation = run_domain(
                services,
                lambda s: enable_automation(
                    s,
                    name=name,
                    when=when,
                    match_kind=kind,
                    pattern=pattern,
                    user=user,
                    now=now,
                    settings=services.settings,
                ),
            )
        except AutomationError as exc:
            ack(response_action="errors", errors={blocks.PATTERN_BLOCK: str(exc)[:150]})
            return
        ack()
        tell(
            client,
            body,
            f":robot_face: `{escape(name)}` now goes out automatically {escape(automation.describe())}. "
            f"Stop it with `/support automation off {escape(name)}`.",
        )

    app.action(blocks.ACTION_AUTOMATE)(guarded(access, "manager", open_modal))
    app.action(blocks.ACTION_AUTOMATION_OFF)(guarded(access, "manager", off_clicked))
    app.view(blocks.AUTOMATION_CALLBACK)(guarded(access, "manager", submitted))

"""Modal submissions: reply, tags, reassign, template editor.

A failed validation answers `response_action: errors`, which keeps the modal open
with the message next to the field: nothing the agent typed is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack import modals
from bot.tickets import templates as reply_templates
from bot.tickets.workflow import TicketError, normalise_tag, reassign_ticket, set_tags
from handlers.access import Access, acting_user, guarded, tell
from handlers.common import People, run_domain, view_metadata
from handlers.replies import ReplyDesk

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.app import Services


def register(app: App, services: Services, access: Access, people: People) -> None:
    desk = ReplyDesk(services, people)

    def reply_submitted(ack: Any, body: dict[str, Any]) -> None:
        errors = desk.submit(body, view_metadata(body), acting_user(body))
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()

    def tags_submitted(ack: Any, body: dict[str, Any], client: Any) -> None:
        view = body["view"]
        chosen = list(modals.state_value(view, modals.TAGS_BLOCK, "pick") or [])
        typed = modals.state_value(view, modals.NEW_TAGS_BLOCK, "names") or ""
        new = [t for t in (part.strip() for part in typed.split(",")) if t]
        try:
            names = chosen + [normalise_tag(t) for t in new]
        except TicketError as exc:
            ack(response_action="errors", errors={modals.NEW_TAGS_BLOCK: str(exc)[:150]})
            return
        ticket_id = int(view_metadata(body)["ticket_id"])
        try:
            run_domain(
                services, lambda s: set_tags(s, ticket_id, acting_user(body), names, services.clock.now())
            )
        except TicketError as exc:
            ack(response_action="errors", errors={modals.NEW_TAGS_BLOCK: str(exc)[:150]})
            return
        ack()

    def reassign_submitted(ack: Any, body: dict[str, Any], client: Any) -> None:
        to = modals.state_value(body["view"], modals.ASSIGNEE_BLOCK, "user")
        if not to or not access.is_staff(to):
            ack(
                response_action="errors",
                errors={modals.ASSIGNEE_BLOCK: "Pick a member of the support team."},
            )
            return
        ticket_id = int(view_metadata(body)["ticket_id"])
        try:
            run_domain(
                services, lambda s: reassign_ticket(s, ticket_id, acting_user(body), to, services.clock.now())
            )
        except TicketError as exc:
            ack(response_action="errors", errors={modals.ASSIGNEE_BLOCK: str(exc)[:150]})
            return
        ack()
        client.chat_postMessage(
            channel=to,
            text=f"<@{acting_user(body)}> assigned you a ticket (#{ticket_id}). It is in your App Home.",
        )

    def template_submitted(ack: Any, body: dict[str, Any], client: Any) -> None:
        view = body["view"]
        value = lambda block: (modals.state_value(view, block) or "").strip()  # noqa: E731
        tags = [t.strip() for t in value("tags").split(",") if t.strip()]
        try:
            saved = run_domain(
                services,
                lambda s: reply_templates.save_template(
                    s,
                    name=value("name"),
                    title=value("title"),
                    language=value("language"),
                    tags=tags,
                    text=value("text"),
                    html=value("html") or None,
                    user=acting_user(body),
                    now=services.clock.now(),
                ),
            )
        except reply_templates.TemplateError as exc:
            ack(response_action="errors", errors={exc.field or "text": str(exc)[:150]})
            return
        ack()
        tell(client, body, f"Template `{saved.name}` saved as version {saved.version}.")

    app.view(modals.REPLY_CALLBACK)(guarded(access, "staff", reply_submitted))
    app.view(modals.TAGS_CALLBACK)(guarded(access, "staff", tags_submitted))
    app.view(modals.REASSIGN_CALLBACK)(guarded(access, "staff", reassign_submitted))
    app.view(modals.TEMPLATE_EDIT_CALLBACK)(guarded(access, "manager", template_submitted))

"""Modal submissions: reply, tags, reassign, template editor.

A failed validation answers `response_action: errors`, which keeps the modal open
with the message next to the field: nothing the agent typed is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack import modals
from bot.slack.errors import ticket_error_text
from bot.tickets import template_store
from bot.tickets import templates as reply_templates
from bot.tickets.workflow import TicketError, normalise_tag, reassign_ticket, set_tags
from handlers.access import Access, acting_user, form_error, guarded, tell
from handlers.common import People, id_of, run_domain, view_metadata
from handlers.replies import ReplyDesk

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.services import Services


# Slack returns private_metadata as we wrote it; anything else is a forged or garbled form.
NO_TICKET_FORM = "This form does not say which ticket it is for; close it and open it again from the ticket."


def ticket_of_form(body: dict[str, Any]) -> int | None:
    return id_of(view_metadata(body).get("ticket_id"))


def register(app: App, services: Services, access: Access, people: People) -> None:
    desk = ReplyDesk(services, people)

    def reply_submitted(ack: Any, body: dict[str, Any]) -> None:
        if ticket_of_form(body) is None:
            ack(response_action="errors", errors=form_error(body, NO_TICKET_FORM))
            return
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
            ack(response_action="errors", errors={modals.NEW_TAGS_BLOCK: ticket_error_text(exc)[:150]})
            return
        ticket_id = ticket_of_form(body)
        if ticket_id is None:
            ack(response_action="errors", errors={modals.NEW_TAGS_BLOCK: NO_TICKET_FORM})
            return
        try:
            run_domain(
                services, lambda s: set_tags(s, ticket_id, acting_user(body), names, services.clock.now())
            )
        except TicketError as exc:
            ack(response_action="errors", errors={modals.NEW_TAGS_BLOCK: ticket_error_text(exc)[:150]})
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
        ticket_id = ticket_of_form(body)
        if ticket_id is None:
            ack(response_action="errors", errors={modals.ASSIGNEE_BLOCK: NO_TICKET_FORM})
            return
        user = acting_user(body)
        try:
            run_domain(
                services,
                lambda s: reassign_ticket(
                    s, ticket_id, user, to, services.clock.now(), manager=access.is_manager(user)
                ),
            )
        except TicketError as exc:
            ack(response_action="errors", errors={modals.ASSIGNEE_BLOCK: ticket_error_text(exc)[:150]})
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
                lambda s: template_store.save_template(
                    s,
                    name=value("name"),
                    title=value("title"),
                    language=value("language"),
                    tags=tags,
                    # Long sources are shown across several boxes: joined back whole.
                    text=modals.joined_value(view, "text").strip(),
                    html=modals.joined_value(view, "html").strip() or None,
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

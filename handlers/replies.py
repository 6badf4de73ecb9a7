"""The reply modal's three steps: open it, fill it from a template, send it.

Only translation happens here: templates are rendered and replies queued by the
domain (`bot/tickets/templates.py`, `bot/tickets/replies.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack import modals
from bot.tickets import templates as reply_templates
from bot.tickets.queries import latest_customer_message
from bot.tickets.replies import send_reply
from bot.tickets.views import ticket_card
from bot.tickets.workflow import TicketError
from handlers.common import People, read_domain, run_domain

if TYPE_CHECKING:
    from bot.app import Services


class ReplyDesk:
    def __init__(self, services: Services, people: People) -> None:
        self.services = services
        self.people = people

    def _choices(self) -> list[modals.TemplateChoice]:
        found = read_domain(
            self.services, lambda s: reply_templates.list_templates(s, self.services.settings.templates_dir)
        )
        return [modals.TemplateChoice(t.name, t.title, t.language) for t in found]

    def _view(self, ticket_id: int, **extra: Any) -> dict[str, Any]:
        def read(session: Any) -> tuple[Any, str]:
            card = ticket_card(session, ticket_id)
            latest = latest_customer_message(session, ticket_id)
            return card, (latest.view_text or latest.text) if latest else ""

        card, last = read_domain(self.services, read)
        if card is None:
            raise TicketError("That ticket no longer exists.")
        if not card.customer_email:
            raise TicketError(f"Ticket #{card.number} has no customer address to reply to.")
        customer = (
            f"{card.customer_name} <{card.customer_email}>" if card.customer_name else card.customer_email
        )
        return modals.reply_modal(
            ticket_id=card.id,
            number=card.number,
            customer=customer,
            subject=card.subject,
            last_message=last,
            templates=self._choices(),
            **extra,
        )

    def open_view(self, ticket_id: int) -> dict[str, Any]:
        return self._view(ticket_id)

    def with_template(
        self, ticket_id: int, name: str, user: str, metadata: dict[str, Any], view: dict[str, Any]
    ) -> dict[str, Any]:
        """The modal again, its editor holding the rendered template, or the error next to the picker."""
        revision = int(metadata.get("revision") or 0) + 1
        settings = self.services.settings
        agent = self.people.name(user)

        def render(session: Any) -> tuple[Any, Any]:
            template = reply_templates.get_template(session, settings.templates_dir, name)
            variables = reply_templates.reply_variables(
                session,
                ticket_id,
                agent_name=agent,
                support_address=settings.support_address,
                now=self.services.clock.now(),
                timezone=settings.timezone,
            )
            return template, reply_templates.render_template(template, variables)

        typed = _typed_body(view, metadata)
        try:
            template, rendered = read_domain(self.services, render)
        except (reply_templates.TemplateRenderError, reply_templates.TemplateNotFound) as exc:
            return self._view(ticket_id, body=typed, revision=revision, error=str(exc))
        return self._view(
            ticket_id,
            body=rendered.text,
            revision=revision,
            template=template.name,
            template_version=template.version,
            rendered_digest=modals.text_digest(rendered.text),
        )

    def submit(self, body: dict[str, Any], metadata: dict[str, Any], user: str) -> dict[str, str] | None:
        """Queue the reply; returns field errors to show in the modal, or None when sent."""
        view = body["view"]
        block = modals.body_block_id(int(metadata.get("revision") or 0))
        text = (modals.state_value(view, block, modals.BODY_ACTION) or "").strip()
        if not text:
            return {block: "Write a message, or pick a template, before sending."}
        ticket_id = int(metadata["ticket_id"])
        settings = self.services.settings
        agent = self.people.name(user)
        template_name = metadata.get("template")
        # The HTML alternative shows what the template said; once the agent edits the text,
        # only the text they actually wrote may go out.
        unedited = template_name is not None and modals.text_digest(text) == metadata.get("digest")

        def send(session: Any) -> None:
            html = None
            if unedited:
                # Exactly the version the agent saw, even if a manager saved a newer one meanwhile.
                template = reply_templates.get_template(
                    session, settings.templates_dir, template_name, version=metadata.get("version")
                )
                if template.html:
                    variables = reply_templates.reply_variables(
                        session,
                        ticket_id,
                        agent_name=agent,
                        support_address=settings.support_address,
                        now=self.services.clock.now(),
                        timezone=settings.timezone,
                    )
                    html = reply_templates.render_template(template, variables).html
            send_reply(
                session,
                ticket_id=ticket_id,
                agent_id=user,
                agent_name=agent,
                text=text,
                html=html,
                template_name=template_name,
                template_version=metadata.get("version"),
                now=self.services.clock.now(),
                settings=settings,
            )

        try:
            run_domain(self.services, send)
        except (TicketError, reply_templates.TemplateRenderError, reply_templates.TemplateNotFound) as exc:
            return {block: str(exc)[:150]}
        return None


def _typed_body(view: dict[str, Any], metadata: dict[str, Any]) -> str:
    block = modals.body_block_id(int(metadata.get("revision") or 0))
    return str(modals.state_value(view, block, modals.BODY_ACTION) or "")

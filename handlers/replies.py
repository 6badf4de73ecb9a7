"""The reply modal's three steps: open it, fill it from a template, send it.

Only translation happens here: templates are rendered and replies queued by the
domain (`bot/tickets/templates.py`, `bot/tickets/replies.py`).
"""

from __future__ import annotations

from email.headerregistry import Address
from typing import TYPE_CHECKING, Any

from bot.slack import modals
from bot.tickets import template_store, template_vars
from bot.tickets import templates as reply_templates
from bot.tickets.agent_reply import PickedTemplate, send_agent_reply, text_digest
from bot.tickets.queries import latest_customer_message
from bot.tickets.replies import CC_LIMIT, CcError, format_cc, parse_cc, reply_recipients
from bot.tickets.views import ticket_card
from bot.tickets.workflow import TicketError
from handlers.common import People, read_domain, run_domain

if TYPE_CHECKING:
    from bot.services import Services


class ReplyDesk:
    def __init__(self, services: Services, people: People) -> None:
        self.services = services
        self.people = people

    def _choices(self) -> list[modals.TemplateChoice]:
        found = read_domain(
            self.services, lambda s: template_store.list_templates(s, self.services.settings.templates_dir)
        )
        return [modals.TemplateChoice(t.name, t.title, t.language) for t in found]

    def _view(self, ticket_id: int, cc: str | None = None, **extra: Any) -> dict[str, Any]:
        """The modal; `cc` is what the agent has in the Cc field (None: not yet shown, so
        it is prefilled with everyone else on the customer's latest mail)."""
        support_address = self.services.settings.support_address

        def read(session: Any) -> tuple[Any, str, Any]:
            card = ticket_card(session, ticket_id)
            latest = latest_customer_message(session, ticket_id)
            recipients = reply_recipients(session, ticket_id, support_address)
            return card, (latest.view_text or latest.text) if latest else "", recipients

        card, last, recipients = read_domain(self.services, read)
        if card is None:
            raise TicketError("That ticket no longer exists.")
        if recipients.to is None:
            raise TicketError(f"Ticket #{card.number} has no customer address to reply to.")
        hint = ""
        if cc is None:
            cc, unshown = _prefill(recipients.cc)
            hint = "Everyone else on the customer's latest email. Remove anyone who shouldn't get this reply."
            if recipients.left_out or unshown:
                hint += (
                    f" It named {recipients.left_out + unshown} more, left out: "
                    f"a reply is copied to at most {CC_LIMIT}."
                )
        return modals.reply_modal(
            ticket_id=card.id,
            number=card.number,
            customer=str(recipients.to),
            subject=card.subject,
            last_message=last,
            templates=self._choices(),
            cc=cc,
            cc_hint=hint,
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
            template = template_store.get_template(session, settings.templates_dir, name)
            variables = template_vars.reply_variables(
                session,
                ticket_id,
                agent_name=agent,
                support_address=settings.support_address,
                now=self.services.clock.now(),
                timezone=settings.timezone,
            )
            return template, reply_templates.render_template(template, variables)

        typed = _typed_body(view, metadata)
        # The Cc the agent may have edited: a template changes the text, never who gets it.
        cc = _typed_cc(view)
        try:
            template, rendered = read_domain(self.services, render)
        except (reply_templates.TemplateRenderError, reply_templates.TemplateNotFound) as exc:
            return self._view(ticket_id, cc, body=typed, revision=revision, error=str(exc))
        if len(rendered.text) > modals.REPLY_LIMIT:
            # Past what the editor's boxes hold together: cutting it would send half a reply.
            error = (
                f"Template {template.name} renders to {len(rendered.text):,} characters; the reply "
                f"editor holds {modals.REPLY_LIMIT:,}. Shorten the template, or write a shorter reply."
            )
            return self._view(ticket_id, cc, body=typed, revision=revision, error=error)
        return self._view(
            ticket_id,
            cc,
            body=rendered.text,
            revision=revision,
            template=template.name,
            template_version=template.version,
            rendered_digest=text_digest(rendered.text),
        )

    def submit(self, body: dict[str, Any], metadata: dict[str, Any], user: str) -> dict[str, str] | None:
        """Queue the reply; returns field errors to show in the modal, or None when sent."""
        view = body["view"]
        block = modals.body_block_id(int(metadata.get("revision") or 0))
        text = _typed_body(view, metadata).strip()
        settings = self.services.settings
        errors: dict[str, str] = {}
        if not text:
            errors[block] = "Write a message, or pick a template, before sending."
        typed_cc = _typed_cc(view)
        cc = None  # a form without the field (opened before it existed): everyone, as the modal would say
        if typed_cc is not None:
            try:
                cc = parse_cc(typed_cc, settings.support_address)
            except CcError as exc:
                errors[modals.CC_BLOCK] = str(exc)[:150]
        if errors:
            return errors
        ticket_id = int(metadata["ticket_id"])
        agent = self.people.name(user)
        template_name = metadata.get("template")
        picked = (
            PickedTemplate(template_name, metadata.get("version"), metadata.get("digest"))
            if template_name is not None
            else None
        )

        def send(session: Any) -> None:
            send_agent_reply(
                session,
                ticket_id=ticket_id,
                agent_id=user,
                agent_name=agent,
                text=text,
                picked=picked,
                cc=cc,
                now=self.services.clock.now(),
                settings=settings,
            )

        try:
            run_domain(self.services, send)
        except CcError as exc:
            return {modals.CC_BLOCK: str(exc)[:150]}
        except (TicketError, reply_templates.TemplateRenderError, reply_templates.TemplateNotFound) as exc:
            return {block: str(exc)[:150]}
        return None


def _typed_body(view: dict[str, Any], metadata: dict[str, Any]) -> str:
    return modals.typed_reply(view, int(metadata.get("revision") or 0))


def _typed_cc(view: dict[str, Any]) -> str | None:
    """The Cc field as submitted ("" when emptied), or None when the form has no such field."""
    values = (view.get("state") or {}).get("values") or {}
    if modals.CC_BLOCK not in values:
        return None
    return str(modals.state_value(view, modals.CC_BLOCK, modals.CC_ACTION) or "")


def _prefill(cc: tuple[Address, ...]) -> tuple[str, int]:
    """The default Cc as Slack's field can hold it (3,000 characters): with names, else
    bare addresses, else as many as fit; and how many did not."""
    text = format_cc(cc)
    if len(text) <= modals.INPUT_LIMIT:
        return text, 0
    text, shown = "", 0
    for address in cc:
        longer = f"{text}, {address.addr_spec}" if text else address.addr_spec
        if len(longer) > modals.INPUT_LIMIT:
            break
        text, shown = longer, shown + 1
    return text, len(cc) - shown

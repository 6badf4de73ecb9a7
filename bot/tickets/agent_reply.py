"""An agent's reply from the reply form: which parts go out, then `send_reply`.

The form hands back what the agent wrote and, if they picked a template, which one
and a digest of the text it rendered. The rule decided here: a template's HTML part
shows what the template said, so it may go out only while the text is exactly what
the template rendered; once the agent edits the text, only what they wrote goes out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.tickets import template_store, template_vars
from bot.tickets import templates as reply_templates
from bot.tickets.replies import send_reply

if TYPE_CHECKING:
    from bot.config import Settings


def text_digest(text: str) -> str:
    """A short fingerprint of a reply's text, kept with the form to tell an edit later."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PickedTemplate:
    """The template the agent picked: the version they saw, and the digest of its text."""

    name: str
    version: int | None
    digest: str | None


@dataclass(frozen=True)
class SentReply:
    message_id: int
    with_html: bool  # the template's HTML part went out too


def html_may_go_out(text: str, picked: PickedTemplate | None) -> bool:
    """Only an unedited template may carry its HTML part (see the module's docstring)."""
    return picked is not None and picked.digest is not None and text_digest(text) == picked.digest


def send_agent_reply(
    session: Session,
    *,
    ticket_id: int,
    agent_id: str,
    agent_name: str,
    text: str,
    picked: PickedTemplate | None,
    cc: Sequence[Address] | None,
    now: datetime,
    settings: Settings,
) -> SentReply:
    """Queue the agent's reply; raises TicketError (or a template error) with a sentence for them."""
    html = None
    if picked is not None and html_may_go_out(text, picked):
        # Exactly the version the agent saw, even if a manager saved a newer one meanwhile.
        template = template_store.get_template(
            session, settings.templates_dir, picked.name, version=picked.version
        )
        if template.html:
            variables = template_vars.reply_variables(
                session,
                ticket_id,
                agent_name=agent_name,
                support_address=settings.support_address,
                now=now,
                timezone=settings.timezone,
            )
            html = reply_templates.render_template(template, variables).html
    message = send_reply(
        session,
        ticket_id=ticket_id,
        agent_id=agent_id,
        agent_name=agent_name,
        text=text,
        html=html,
        template_name=picked.name if picked else None,
        template_version=picked.version if picked else None,
        now=now,
        settings=settings,
        cc=cc,
    )
    return SentReply(message.id, with_html=html is not None)

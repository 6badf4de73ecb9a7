"""What the sandbox starts with, so its first screen is alive: a small team in the Slack
stand-in, a few customer emails in the mailbox (ingested by the normal watcher, so they
become tickets the way real mail does), and, once the rota has its storage, a rota.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.team import CHANNEL, CHANNEL_NAME, SUPPORT_ADDRESS, TEAM
from bot.storage.db import transaction
from rota import store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.clock import Clock
    from bot.config import Settings
    from bot.sandbox.imap_server import MailboxOps

log = logging.getLogger(__name__)

# (name, address, subject, body): one per template family, in both languages, and one
# whose subject would ping the whole channel if the bot did not escape it.
CUSTOMER_EMAILS: tuple[tuple[str, str, str, str], ...] = (
    (
        "Maria Rossi",
        "maria.rossi@example.org",
        "Non riesco ad accedere al mio account",
        "Buongiorno,\n\nda ieri non riesco più ad accedere: la password non viene accettata "
        "e il link di reimpostazione non arriva.\n\nGrazie,\nMaria",
    ),
    (
        "John Carter",
        "john.carter@example.net",
        "Refund for order 10422",
        "Hello,\n\nI was charged twice for order 10422. Could you refund the second payment?\n\n"
        "Thanks,\nJohn",
    ),
    (
        "Priya Nair",
        "priya@example.com",
        "<!channel> the export button does nothing",
        "Hi team,\n\nClicking Export on the reports page does nothing, in both Firefox and Chrome.\n"
        "<b>Not bold</b>, and <@U0GIULIA> should not be pinged either.\n\nPriya",
    ),
)


def customer_email(
    *,
    name: str,
    address: str,
    subject: str,
    body: str,
    in_reply_to: str | None = None,
    references: str | None = None,
    when: datetime | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A customer's email as their mail client would send it to the support address,
    with any attachments given as (file name, declared content type, bytes)."""
    msg = EmailMessage()
    msg["From"] = f'"{name}" <{address}>' if name else address
    msg["To"] = SUPPORT_ADDRESS
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when or datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or "example.org")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join(filter(None, [references, in_reply_to]))
    msg.set_content(body)
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(msg)


def seed_workspace(slack: SlackStandIn) -> None:
    """The team, all members of the support channel (which makes them staff)."""
    slack.name_channel(CHANNEL, CHANNEL_NAME)
    for member in TEAM:
        slack.add_user(member.id, member.name, member.real_name, tz=member.tz, channels=(CHANNEL,))
        slack.users[member.id]["profile"]["title"] = member.title


def seed_mailbox(mailbox: MailboxOps) -> None:
    mailbox.append_many(
        [
            customer_email(name=name, address=address, subject=subject, body=body)
            for name, address, subject, body in CUSTOMER_EMAILS
        ]
    )


def seed_rota(factory: sessionmaker[Session], settings: Settings, clock: Clock) -> None:
    """The team on the rota and the coming weeks planned and published, as a manager would
    with `/oncall plan`, so "swap a duty" and "jump to tonight" have duties to show."""
    now = clock.now()
    with transaction(factory) as session:
        if store.rota_end(session) is not None:
            return
        store.sync_roster(session, [store.StaffMember(m.id, m.real_name, m.tz) for m in TEAM], now)
        preview = store.preview_plan(
            session,
            settings.calendar(),
            settings.plan_config(),
            now=now,
            until=now + timedelta(weeks=settings.rota_plan_weeks),
        )
        manager = next((m.id for m in TEAM if m.manager), "system")
        store.publish_plan(session, preview, by=manager, now=now)
    log.info("sandbox: rota planned for %s weeks", settings.rota_plan_weeks)

"""A support desk for end-to-end tests: the real bot running against the Slack, IMAP and SMTP
stand-ins, its people in the stand-in workspace, and the look-ups those tests keep needing (a
ticket's post in the channel, its row, the outbox drained)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import SupportBot
from bot.clock import FrozenClock
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.storage.models import OutboxItem, Ticket
from tests.support.harness import MailServer, bot_env, running_bot, wait_until
from tests.support.settings import CHANNEL
from tests.support.slack_requests import SlackUser

D = TypeVar("D", bound="Desk")


def add_people(
    slack: SlackStandIn,
    staff: Mapping[str, str],
    *,
    managers: Mapping[str, str] | None = None,
    outsiders: Mapping[str, str] | None = None,
) -> None:
    """Staff ("Ada Staff") in the support channel; managers and outsiders outside it, so not
    on the rota (managers count as staff anyway). Each mapping is user id to handle."""
    for user, name in staff.items():
        slack.add_user(user, name, f"{name.title()} Staff", channels=(CHANNEL,))
    for user, name in (managers or {}).items():
        slack.add_user(user, name, f"{name.title()} Manager")
    for user, name in (outsiders or {}).items():
        slack.add_user(user, name, f"{name.title()} Outsider")


def desk_env(
    slack: SlackStandIn, imap: MailServer, database_url: str, smtp: SmtpCatcher | None = None, **settings: str
) -> dict[str, str]:
    """The bot's settings pointed at these stand-ins (SMTP at the harness's default port when
    a test sends no mail), with `settings` on top."""
    if smtp is not None:
        settings = {"SMTP_PORT": str(smtp.port), **settings}
    return bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url, **settings)


def ticket_post(slack: SlackStandIn, number: int) -> dict[str, Any] | None:
    """The channel message the bot posted for ticket #`number`, as first posted, or None."""
    for message in slack.messages(CHANNEL):
        meta = message.get("metadata") or {}
        if (
            meta.get("event_type") == "supportbot_ticket"
            and (meta.get("event_payload") or {}).get("number") == number
        ):
            return {**message, "channel": CHANNEL}
    return None


def wait_for_ticket_post(slack: SlackStandIn, number: int) -> dict[str, Any]:
    return dict(wait_until(lambda: ticket_post(slack, number), what=f"ticket #{number} in the channel"))


def ticket_card(slack: SlackStandIn, number: int) -> dict[str, Any]:
    """The ticket's channel message as Slack shows it now (after any chat.update)."""
    first = wait_for_ticket_post(slack, number)
    return {**slack.thread(CHANNEL, first["ts"])[0], "channel": CHANNEL}


def count_rows(factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def settle_outbox(factory: sessionmaker[Session]) -> None:
    """Wait until the outbox has delivered everything it holds."""
    wait_until(
        lambda: count_rows(factory, OutboxItem, OutboxItem.status == "pending") == 0,
        timeout=30,
        what="the outbox to be delivered",
    )


@dataclass
class Desk:
    """The running bot and the stand-ins it talks to."""

    bot: SupportBot
    slack: SlackStandIn
    imap: MailServer
    smtp: SmtpCatcher
    clock: FrozenClock | None = None

    @property
    def database_url(self) -> str:
        return self.bot.settings.database_url

    def user(self, user_id: str) -> SlackUser:
        return SlackUser(self.bot.url, self.slack, user_id)

    def posted(self, number: int) -> dict[str, Any] | None:
        return ticket_post(self.slack, number)

    def ticket_message(self, number: int = 1) -> dict[str, Any]:
        return wait_for_ticket_post(self.slack, number)

    def card(self, number: int) -> dict[str, Any]:
        return ticket_card(self.slack, number)

    def ticket(self, number: int = 1) -> Ticket | None:
        """The ticket's row, detached, or None before its mail is stored."""
        with self.bot.factory() as session:
            found = session.scalar(select(Ticket).where(Ticket.number == number))
            if found is not None:
                session.expunge(found)
            return found

    def count(self, model: Any, *where: Any) -> int:
        return count_rows(self.bot.factory, model, *where)

    def settle(self) -> None:
        settle_outbox(self.bot.factory)


@contextmanager
def running_desk(
    slack: SlackStandIn,
    imap: MailServer,
    database_url: str,
    *,
    clock: FrozenClock | None = None,
    kind: type[D] = Desk,  # type: ignore[assignment]
    **settings: str,
) -> Iterator[D]:
    """The bot started on a fresh SMTP catcher, with `settings` over the harness's defaults."""
    with SmtpCatcher() as smtp:
        env = desk_env(slack, imap, database_url, smtp, **settings)
        with running_bot(env, clock=clock) as bot:
            yield kind(bot, slack, imap, smtp, clock)

"""Spam from Slack: *Mark as spam* (the card's ⋯ menu), *Not spam*, and `/support spam`.

The rules live in bot/tickets/spam.py; this module only knows which addresses may never be
blocked (our own, and staff's, which only Slack knows) and how to answer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.services import Services
from bot.slack import lists
from bot.slack.paging import queue_paging_notices
from bot.slack.render import escape, truncate
from bot.tickets import spam
from bot.tickets.workflow import TicketError
from handlers.access import Access
from handlers.common import read_domain, run_domain

log = logging.getLogger(__name__)

_CACHE_SECONDS = 300.0
_PAGES = 50

SPAM_USAGE = (
    "Use `/support spam` (the list), `/support spam unblock ADDRESS`, or, for managers, "
    "`/support spam block-domain DOMAIN` / `/support spam unblock-domain DOMAIN`."
)


class Protected:
    """Addresses that can never be blocked: SUPPORT_ADDRESS and every staff member's email.

    Staff addresses come from Slack's profiles (users.list, needs `users:read.email`),
    cached for a few minutes: marking spam is rare, and the list changes rarely. One is
    built by the composition root (bot/app.py) and reached as `services.protected`.
    """

    def __init__(self, settings: Settings, client: WebClient, access: Access) -> None:
        self.settings = settings
        self.client = client
        self.access = access
        self._lock = threading.Lock()
        self._staff: frozenset[str] = frozenset()
        self._fetched_at = -_CACHE_SECONDS

    def addresses(self) -> frozenset[str]:
        own = {self.settings.support_address.lower()}
        with self._lock:
            if time.monotonic() - self._fetched_at >= _CACHE_SECONDS:
                try:
                    self._staff = frozenset(self._fetch())
                    self._fetched_at = time.monotonic()
                except (SlackClientError, OSError) as exc:  # SlackApiError too: Slack's answer or no answer
                    # Keep the last list; blocking a colleague is what this guards against, so
                    # with no list at all nobody but obvious strangers can be told apart: say so.
                    log.warning("cannot read staff addresses from Slack (%s); using the last list", exc)
            return frozenset(own | self._staff)

    def _fetch(self) -> set[str]:
        found: set[str] = set()
        cursor: str | None = None
        for _ in range(_PAGES):
            response = self.client.users_list(limit=200, cursor=cursor)
            for member in response.get("members") or []:
                email = str((member.get("profile") or {}).get("email") or "").strip().lower()
                if email and self.access.is_staff(str(member.get("id") or "")):
                    found.add(email)
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found


def mark(services: Services, access: Access, ticket_id: int, user: str) -> str:
    """Mark as spam; the sentence to tell the person who did."""
    now = services.clock.now()
    # The ticket is checked before Slack is asked anything about staff.
    read_domain(services, lambda s: spam.ticket_sender(s, ticket_id))
    protected = services.protected.addresses()

    def act(session: Session) -> spam.MarkResult:
        result = spam.mark_spam(session, ticket_id, user, now, protected=protected)
        channel = services.settings.support_channel
        queue_paging_notices(session, result.paging, now, support_channel=channel)
        return result

    result = run_domain(services, act)
    sender = escape(truncate(result.sender, 320))
    if result.blocked:
        return f"Ticket #{result.number} is marked as spam; mail from {sender} will be set aside too."
    if result.sender:
        why = escape(truncate(result.not_blocked_why, 500))
        return (
            f"Ticket #{result.number} is marked as spam, but {why}; "
            "its next mail will reach the channel as usual."
        )
    return f"Ticket #{result.number} is marked as spam (it has no sender to block)."


def restore(services: Services, ticket_id: int, user: str) -> str:
    now = services.clock.now()
    result = run_domain(services, lambda s: spam.not_spam(s, ticket_id, user, now))
    said = f"Ticket #{result.number} is back ({result.status})"
    if result.unblocked:
        said += f" and {escape(truncate(result.sender, 320))} is unblocked"
    said += "."
    if result.domain_still_blocked:
        said += (
            f" Its domain {escape(truncate(result.domain_still_blocked, 253))} is still blocked, so new mail "
            "from it is still set aside: a manager can `/support spam unblock-domain` it."
        )
    return said


def spam_command(services: Services, access: Access, ack: Any, user: str, args: list[str]) -> None:
    """`/support spam …`, for the dispatcher in handlers/commands.py."""
    now = services.clock.now()
    if not args:
        lines = read_domain(services, spam.recent_spam)
        blocked = read_domain(services, spam.blocked_senders)
        ack(text="Spam and blocked senders", blocks=lists.spam_list(lines, blocked))
        return
    sub, rest = args[0].lower(), args[1:]
    if sub not in ("unblock", "block-domain", "unblock-domain"):
        raise TicketError(f"I don't know `spam {escape(truncate(sub, 60))}`. {SPAM_USAGE}")
    if len(rest) != 1:
        what = "email address" if sub == "unblock" else "domain"
        raise TicketError(f"Give one {what}. {SPAM_USAGE}")
    if sub == "unblock":
        try:
            address = run_domain(services, lambda s: spam.unblock_address(s, rest[0], user, now))
        except TicketError as exc:
            # An address may hold `&`: everything typed is escaped before it is shown.
            raise TicketError(escape(str(exc))) from None
        ack(text=f"{escape(address)} is unblocked: its next mail reaches the channel.")
        return
    if not access.is_manager(user):
        ack(text=access.refusal("manager"))
        return
    if sub == "block-domain":
        spam.normalise_domain(rest[0])  # bad input is answered before Slack is asked about staff
        protected = services.protected.addresses()
        domain = run_domain(services, lambda s: spam.block_domain(s, rest[0], user, now, protected=protected))
        ack(text=f"Mail from anyone at {escape(domain)} will be kept as spam, never shown.")
    else:
        domain = run_domain(services, lambda s: spam.unblock_domain(s, rest[0], user, now))
        ack(text=f"{escape(domain)} is unblocked.")

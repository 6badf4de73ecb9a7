"""Spam from Slack: *Mark as spam* (the card's ⋯ menu), *Not spam*, and `/support spam`.

The rules live in bot/tickets/spam.py; this module only knows which addresses may never be
blocked (our own, and staff's, which only Slack knows) and how to answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
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
from handlers.kept_fresh import KeptFresh

log = logging.getLogger(__name__)

_CACHE_SECONDS = 1800.0
# Marking spam happens after the click is acknowledged, so it may wait for a first read;
# a slash command answers within Slack's three seconds.
_MARK_WAIT_SECONDS = 10.0
_COMMAND_WAIT_SECONDS = 0.8
_TRIES = 5
_MAX_PAUSE_SECONDS = 60.0

SPAM_USAGE = (
    "Use `/support spam` (the list), `/support spam unblock ADDRESS`, or, for managers, "
    "`/support spam block-domain DOMAIN` / `/support spam unblock-domain DOMAIN`."
)


class Protected:
    """Addresses that can never be blocked: SUPPORT_ADDRESS and every staff member's email.

    Staff are the list `Access` already keeps (the support channel's members, or
    STAFF_USERGROUP's) and the managers; each one's address is read from their Slack
    profile (users.info, needs `users:read.email`), in the background and never before a
    request is acknowledged. Never users.list: over a whole workspace that is dozens of
    calls at about 20 a minute, and a 429 midway left staff unprotected. A 429 here is
    waited out (Retry-After) and the person asked again. One is built by the composition
    root (bot/app.py) and reached as `services.protected`.
    """

    def __init__(self, settings: Settings, client: WebClient, access: Access) -> None:
        self.settings = settings
        self.client = client
        self.access = access
        self._emails: KeptFresh[frozenset[str]] = KeptFresh(self._fetch, _CACHE_SECONDS, "staff addresses")

    def addresses(self, wait: float = _MARK_WAIT_SECONDS) -> frozenset[str]:
        """Our own address and staff's; if staff's were never read yet, waits up to `wait`
        seconds, then refuses (a TicketError) rather than let a colleague be blocked."""
        staff = self._emails.get(first_wait=wait)
        if staff is None:
            raise TicketError(
                "I can't tell staff addresses apart yet (Slack is slow to answer); nothing was "
                "changed. Try again in a minute."
            )
        return frozenset({self.settings.support_address.lower()} | staff)

    def _fetch(self) -> frozenset[str]:
        staff = self.access.staff_ids()
        if staff is None:
            # An empty list would leave every colleague unprotected for half an hour.
            raise RuntimeError("the staff list could not be read from Slack")
        people = set(staff) | set(self.settings.managers)
        found: set[str] = set()
        for user in sorted(people):
            info = self._user_info(user)
            email = str((info.get("profile") or {}).get("email") or "").strip().lower()
            if email and not info.get("is_bot"):
                found.add(email)
        return frozenset(found)

    def _user_info(self, user: str) -> dict[str, Any]:
        for attempt in range(_TRIES):
            try:
                return dict(self.client.users_info(user=user).get("user") or {})
            except SlackApiError as exc:
                if exc.response.status_code != 429 or attempt == _TRIES - 1:
                    raise
                pause = _retry_after(exc.response.headers)
                log.info("users.info rate limited; asking again in %.0f s", pause)
                time.sleep(pause)
        raise AssertionError("unreachable")


def _retry_after(headers: Any) -> float:
    try:
        given = float(headers.get("Retry-After") or headers.get("retry-after") or 1)
    except (TypeError, ValueError):
        given = 1.0
    return min(max(given, 0.0), _MAX_PAUSE_SECONDS)


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
        protected = services.protected.addresses(wait=_COMMAND_WAIT_SECONDS)
        domain = run_domain(services, lambda s: spam.block_domain(s, rest[0], user, now, protected=protected))
        ack(text=f"Mail from anyone at {escape(domain)} will be kept as spam, never shown.")
    else:
        domain = run_domain(services, lambda s: spam.unblock_domain(s, rest[0], user, now))
        ack(text=f"{escape(domain)} is unblocked.")

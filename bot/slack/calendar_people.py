"""Whose address is this: Slack's `users.lookupByEmail` for the addresses a calendar names,
with the roster's names for the events that carry none."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from rota import store
from rota.ical_match import Directory

log = logging.getLogger(__name__)

# A calendar naming more people than this is not one team's rota; Slack's rate limit
# (Tier 3) would also make the look-ups slow.
MAX_LOOKUPS = 60


def roster_names(session: Session) -> dict[str, str]:
    return {m.user_id: m.name for m in store.members(session)}


def directory_for(client: Any, names: dict[str, str], emails: Sequence[str]) -> Directory:
    """The roster's names, and each address Slack knows as someone on the roster.

    Called outside any transaction: the look-ups are one Slack call each."""
    by_email: dict[str, str] = {}
    for email in list(emails)[:MAX_LOOKUPS]:
        try:
            found = client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            if exc.response.get("error") != "users_not_found":
                log.warning("users.lookupByEmail failed: %s", exc.response.get("error"))
            continue
        user_id = str((found.get("user") or {}).get("id") or "")
        if user_id in names:
            by_email[email.lower()] = user_id
    return Directory(by_email, names)

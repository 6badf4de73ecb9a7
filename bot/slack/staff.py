"""Who the support staff are, according to Slack: the rota's roster comes from here."""

from __future__ import annotations

from typing import Any

from bot.config import Settings
from rota.store import StaffMember


def staff_ids(client: Any, settings: Settings) -> set[str]:
    """Members of STAFF_USERGROUP when set, else of the support channel."""
    if settings.staff_usergroup:
        return set(client.usergroups_users_list(usergroup=settings.staff_usergroup).get("users") or [])
    members: set[str] = set()
    cursor = None
    while True:
        response = client.conversations_members(channel=settings.support_channel, limit=1000, cursor=cursor)
        members.update(response.get("members") or [])
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return members


def fetch_staff(client: Any, settings: Settings) -> list[StaffMember]:
    """Staff with their names and time zones; bots, apps and deactivated accounts left out."""
    staff: list[StaffMember] = []
    for user_id in sorted(staff_ids(client, settings)):
        # A failed lookup raises: leaving the person out would make the sync take them off the rota.
        info = client.users_info(user=user_id).get("user") or {}
        if info.get("is_bot") or info.get("deleted") or user_id == "USLACKBOT":
            continue
        profile = info.get("profile") or {}
        name = profile.get("real_name") or info.get("real_name") or profile.get("display_name") or user_id
        staff.append(StaffMember(user_id, str(name), str(info.get("tz") or settings.timezone.key)))
    return staff

"""The stand-in's methods about people: who the bot is, users, Do Not Disturb and user groups."""

from __future__ import annotations

import time

from bot.sandbox.slack_workspace import BOT_ID, BOT_USER, TEAM, Json, Method, SlackError, Workspace, page


def auth_test(ws: Workspace, args: Json) -> Json:
    return {
        "ok": True,
        "url": "https://sandbox.slack.test/",
        "team": "Sandbox",
        "team_id": TEAM,
        "user": "supportbot",
        "user_id": BOT_USER,
        "bot_id": BOT_ID,
    }


def apps_connections_open(ws: Workspace, args: Json) -> Json:
    """A fresh WebSocket URL for Socket Mode (each call a new one, as Slack's carry a ticket)."""
    if ws.socket_url is None:
        # Slack's answer when the app has Socket Mode turned off.
        raise SlackError("not_allowed_token_type")
    return {"ok": True, "url": ws.socket_url()}


def users_info(ws: Workspace, args: Json) -> Json:
    user = ws.users.get(str(args.get("user")))
    if user is None:
        raise SlackError("user_not_found")
    return {"ok": True, "user": user}


def users_lookup_by_email(ws: Workspace, args: Json) -> Json:
    """Slack matches the profile's address whatever its case; none is `users_not_found`."""
    email = str(args.get("email") or "").strip().lower()
    if not email:
        raise SlackError("invalid_arguments")
    for user in ws.users.values():
        if str((user.get("profile") or {}).get("email") or "").lower() == email and not user.get("deleted"):
            return {"ok": True, "user": user}
    raise SlackError("users_not_found")


def users_list(ws: Workspace, args: Json) -> Json:
    return page(list(ws.users.values()), args, "members")


def dnd_info(ws: Workspace, args: Json) -> Json:
    """Slack's reference: "All of the snooze_* properties will only be visible if the user
    being queried is also the current user". The caller is the bot, so a colleague's
    manual pause is invisible; only their Do Not Disturb schedule shows."""
    user = str(args.get("user") or BOT_USER)
    if user not in ws.users:
        raise SlackError("user_not_found")
    state = ws.dnd.get(user, {})
    answer: Json = {"ok": True, "dnd_enabled": "start" in state}
    if "start" in state:
        answer.update(next_dnd_start_ts=int(state["start"]), next_dnd_end_ts=int(state["end"]))
    if user == BOT_USER:
        left = state.get("snooze_until", 0) - time.time()
        answer["snooze_enabled"] = left > 0
        if left > 0:
            answer.update(snooze_endtime=int(state["snooze_until"]), snooze_remaining=int(left))
    return answer


def usergroups_list(ws: Workspace, args: Json) -> Json:
    _check_usergroups_allowed(ws, changing=False)
    return {"ok": True, "usergroups": list(ws.usergroups.values())}


def usergroups_create(ws: Workspace, args: Json) -> Json:
    _check_usergroups_allowed(ws, changing=True)
    group_id = f"S{next(ws.ids):07d}"
    ws.usergroups[group_id] = {
        "id": group_id,
        "name": args.get("name"),
        "handle": args.get("handle") or args.get("name"),
        "users": [],
    }
    return {"ok": True, "usergroup": ws.usergroups[group_id]}


def _check_usergroups_allowed(ws: Workspace, *, changing: bool) -> None:
    if not ws.paid_plan:
        raise SlackError("plan_upgrade_required")
    if changing and not ws.everyone_manages_usergroups:
        # docs.slack.dev/reference/methods/usergroups.users.update: "A bot token can be used
        # only if permissions are set to everyone."
        raise SlackError("permission_denied")


def usergroups_users_update(ws: Workspace, args: Json) -> Json:
    _check_usergroups_allowed(ws, changing=True)
    group = ws.usergroups.get(str(args.get("usergroup")))
    if group is None:
        raise SlackError("no_such_subteam")
    group["users"] = [u for u in str(args.get("users") or "").split(",") if u]
    return {"ok": True, "usergroup": group}


def usergroups_users_list(ws: Workspace, args: Json) -> Json:
    _check_usergroups_allowed(ws, changing=False)
    group = ws.usergroups.get(str(args.get("usergroup")))
    if group is None:
        raise SlackError("no_such_subteam")
    return {"ok": True, "users": group["users"]}


METHODS: dict[str, Method] = {
    "apps.connections.open": apps_connections_open,
    "auth.test": auth_test,
    "users.info": users_info,
    "users.list": users_list,
    "users.lookupByEmail": users_lookup_by_email,
    "dnd.info": dnd_info,
    "usergroups.list": usergroups_list,
    "usergroups.create": usergroups_create,
    "usergroups.users.update": usergroups_users_update,
    "usergroups.users.list": usergroups_users_list,
}

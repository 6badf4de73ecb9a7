"""The stand-in's views methods: modals opened, pushed and updated, and App Home."""

from __future__ import annotations

import time

from bot.sandbox.slack_workspace import TRIGGER_SECONDS, Json, Method, SlackError, Workspace


def _check_trigger(ws: Workspace, args: Json) -> None:
    if not args.get("trigger_id"):
        raise SlackError("invalid_trigger_id")
    issued = ws.trigger_issued.get(str(args["trigger_id"]))
    if issued is not None and time.monotonic() - issued > TRIGGER_SECONDS:
        raise SlackError("expired_trigger_id")


def views_open(ws: Workspace, args: Json) -> Json:
    _check_trigger(ws, args)
    view = ws.store_view(args.get("view"))
    user = ws.trigger_users.get(str(args["trigger_id"]))
    if user is not None:
        ws.modal_stacks[user] = [view["id"]]
    return {"ok": True, "view": view}


def views_push(ws: Workspace, args: Json) -> Json:
    _check_trigger(ws, args)
    view = ws.store_view(args.get("view"))
    user = ws.trigger_users.get(str(args["trigger_id"]))
    if user is not None:
        # Slack allows three views on the stack.
        if len(ws.modal_stacks.get(user) or []) >= 3:
            raise SlackError("push_limit_reached")
        ws.modal_stacks.setdefault(user, []).append(view["id"])
    return {"ok": True, "view": view}


def views_update(ws: Workspace, args: Json) -> Json:
    view_id = args.get("view_id")
    if not view_id and args.get("external_id"):
        view_id = next(
            (v["id"] for v in ws.views.values() if v.get("external_id") == args["external_id"]), None
        )
    if not view_id or view_id not in ws.views:
        raise SlackError("not_found")
    if args.get("hash") and args["hash"] != ws.views[view_id]["hash"]:
        raise SlackError("hash_conflict")
    view = ws.store_view(args.get("view"), str(view_id))
    for user, home in ws.home.items():
        if home.get("id") == view_id:
            ws.home[user] = view
    return {"ok": True, "view": view}


def views_publish(ws: Workspace, args: Json) -> Json:
    user = str(args.get("user_id"))
    view = ws.store_view(args.get("view"))
    ws.home[user] = view
    return {"ok": True, "view": view}


METHODS: dict[str, Method] = {
    "views.open": views_open,
    "views.push": views_push,
    "views.update": views_update,
    "views.publish": views_publish,
}

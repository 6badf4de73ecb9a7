"""The stand-in's conversations methods: history, threads, membership, DMs and topics."""

from __future__ import annotations

from bot.sandbox.slack_workspace import BOT_USER, Json, Method, SlackError, Workspace, page


def conversations_history(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
    oldest = float(args.get("oldest") or 0)
    latest = float(args.get("latest") or "inf")
    items = [
        p.as_api(with_metadata)
        for p in reversed(ws.posts[channel])
        if not p.deleted and (not p.thread_ts or p.thread_ts == p.ts) and oldest <= float(p.ts) <= latest
    ]
    return page(items, args, "messages")


def conversations_replies(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
    parent = ws.find(channel, str(args.get("ts")))
    items = [parent.as_api(with_metadata)] + [p.as_api(with_metadata) for p in ws.replies(channel, parent.ts)]
    return page(items, args, "messages")


def conversations_join(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    ws.members.setdefault(channel, set()).add(BOT_USER)
    return {"ok": True, "channel": {"id": channel}}


def conversations_info(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    return {
        "ok": True,
        "channel": {
            "id": channel,
            "name": ws.channel_names.get(channel, channel.lower()),
            "is_member": BOT_USER in ws.members.get(channel, set()),
            "topic": {"value": ws.topics.get(channel, "")},
        },
    }


def conversations_members(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    return page(sorted(ws.members.get(channel, set())), args, "members")


def conversations_open(ws: Workspace, args: Json) -> Json:
    users = str(args.get("users") or "").split(",")
    if not users or not users[0]:
        raise SlackError("users_list_not_supplied")
    return {"ok": True, "channel": {"id": ws.dm_channel(users[0])}}


def conversations_set_topic(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    ws.topics[channel] = str(args.get("topic", ""))
    return {"ok": True, "channel": {"id": channel, "topic": {"value": ws.topics[channel]}}}


METHODS: dict[str, Method] = {
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "conversations.join": conversations_join,
    "conversations.info": conversations_info,
    "conversations.members": conversations_members,
    "conversations.open": conversations_open,
    "conversations.setTopic": conversations_set_topic,
}

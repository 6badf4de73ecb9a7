"""The stand-in's chat methods: posting, editing and deleting messages, ephemeral
messages, permalinks and reactions."""

from __future__ import annotations

from bot.sandbox.slack_workspace import BOT_USER, Json, Method, SlackError, Workspace


def chat_post_message(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    if BOT_USER not in ws.members.get(channel, set()) and channel.startswith("C"):
        raise SlackError("not_in_channel")
    text, blocks = args.get("text"), args.get("blocks")
    if not text and not blocks:
        raise SlackError("no_text")
    ws.check_message("chat.postMessage", text, blocks, args.get("metadata"))
    post = ws.store(channel, BOT_USER, str(text or ""), blocks, args.get("metadata"), args.get("thread_ts"))
    return {"ok": True, "channel": channel, "ts": post.ts, "message": post.as_api(True)}


def chat_update(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    post = ws.find(channel, str(args.get("ts")))
    ws.check_message("chat.update", args.get("text"), args.get("blocks"), args.get("metadata"))
    if "text" in args:
        post.text = str(args["text"])
    if "blocks" in args:
        post.blocks = args["blocks"] or []
    if args.get("metadata"):
        post.metadata = args["metadata"]
    post.edited = True
    return {"ok": True, "channel": channel, "ts": post.ts, "text": post.text}


def chat_delete(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    ws.find(channel, str(args.get("ts"))).deleted = True
    return {"ok": True, "channel": channel, "ts": args.get("ts")}


def chat_post_ephemeral(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    ws.check_message("chat.postEphemeral", args.get("text"), args.get("blocks"), None)
    ts = ws.next_ts()
    ws.ephemeral.append(
        {
            "channel": channel,
            "user": args.get("user"),
            "text": args.get("text", ""),
            "blocks": args.get("blocks") or [],
            "thread_ts": args.get("thread_ts"),
            "ts": ts,
        }
    )
    return {"ok": True, "message_ts": ts}


def chat_get_permalink(ws: Workspace, args: Json) -> Json:
    channel = ws.channel_of(args)
    ts = str(args.get("message_ts"))
    return {
        "ok": True,
        "channel": channel,
        "permalink": f"https://sandbox.slack.test/archives/{channel}/p{ts.replace('.', '')}",
    }


def reactions_add(ws: Workspace, args: Json) -> Json:
    ws.find(ws.channel_of(args), str(args.get("timestamp")))
    return {"ok": True}


METHODS: dict[str, Method] = {
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "reactions.add": reactions_add,
}

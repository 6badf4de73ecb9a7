"""The stand-in's file methods: Slack's two-step external upload (step 2, the upload URL
itself, is plain HTTP served by `SlackStandIn`)."""

from __future__ import annotations

import mimetypes

from bot.sandbox.slack_workspace import BOT_USER, Json, Method, SlackError, Workspace


def files_get_upload_url_external(ws: Workspace, args: Json) -> Json:
    if not args.get("filename") or not str(args.get("length") or "").isdigit():
        raise SlackError("invalid_arguments")
    file_id = f"F{next(ws.ids):07d}"
    ws.uploads[file_id] = {
        "id": file_id,
        "name": args.get("filename"),
        "length": int(args.get("length") or 0),
        "content": b"",
    }
    return {
        "ok": True,
        "upload_url": f"{ws.root_url}/upload/{file_id}",
        "file_id": file_id,
    }


def files_complete_upload_external(ws: Workspace, args: Json) -> Json:
    files = args.get("files") or []
    if not isinstance(files, list) or not files:
        raise SlackError("invalid_arguments")
    channel: str | None = None
    thread_ts = str(args.get("thread_ts") or "") or None
    if args.get("channel_id"):
        channel = ws.channel_of({"channel": args["channel_id"]})
        if BOT_USER not in ws.members.get(channel, set()) and channel.startswith("C"):
            raise SlackError("not_in_channel")
        if thread_ts and not any(p.ts == thread_ts for p in ws.posts[channel]):
            raise SlackError("invalid_thread_ts")
    for entry in files:
        upload = ws.uploads.get(str(entry.get("id")))
        if upload is None:
            raise SlackError("file_not_found")
        if len(upload["content"]) != upload["length"]:
            # Slack checks the bytes it received against the length announced in step 1.
            raise SlackError("file_upload_size_mismatch")
    done = []
    shared: list[Json] = []
    for entry in files:
        upload = ws.uploads.pop(str(entry.get("id")))
        name = str(upload["name"])
        record = {
            **upload,
            "title": entry.get("title") or name,
            "channel": channel,
            "thread_ts": thread_ts,
            "initial_comment": args.get("initial_comment"),
            "size": len(upload["content"]),
        }
        ws.files.append(record)
        info = {
            "id": record["id"],
            "name": name,
            "title": record["title"],
            # Slack detects the type itself; the stand-in guesses from the name.
            "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "size": record["size"],
            "user": BOT_USER,
        }
        shared.append({**info, "content": upload["content"]})
        done.append({"id": record["id"], "title": record["title"], "name": name})
    if channel is not None:
        # Shared with one message holding the files, in the channel or the thread, as Slack does.
        post = ws.store(channel, BOT_USER, str(args.get("initial_comment") or ""), None, None, thread_ts)
        post.files = shared
        for record in ws.files[-len(shared) :]:
            record["ts"] = post.ts
    return {"ok": True, "files": done}


def files_delete(ws: Workspace, args: Json) -> Json:
    """As Slack documents it: `file` is required; a file deleted already is `file_deleted`, an
    unknown one `file_not_found`. The messages that shared it keep only a tombstone."""
    file_id = str(args.get("file") or "")
    if not file_id:
        raise SlackError("invalid_arguments")
    for index, record in enumerate(ws.files):
        if record.get("id") != file_id:
            continue
        if record.get("mode") == "tombstone":
            raise SlackError("file_deleted")
        keep = {k: record.get(k) for k in ("id", "channel", "thread_ts", "ts")}
        ws.files[index] = {**keep, "mode": "tombstone", "content": b""}
        for posts in ws.posts.values():
            for post in posts:
                post.files = [
                    {"id": f["id"], "mode": "tombstone"} if f.get("id") == file_id else f for f in post.files
                ]
        return {"ok": True}
    raise SlackError("file_not_found")


METHODS: dict[str, Method] = {
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.completeUploadExternal": files_complete_upload_external,
    "files.delete": files_delete,
}

"""Customers' attachments reach the ticket's Slack thread: email in over IMAP, files out
at the Slack stand-in through the real slack_sdk `files_upload_v2`, via the outbox."""

from __future__ import annotations

import json
import os
import time
import unicodedata
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
from sqlalchemy import select

from bot.mail.attachments import AttachmentPart, image_dimensions, is_decoration
from bot.outbox.queue import SLACK_ATTACHMENT_UPLOAD
from bot.slack.upload_delivery import UPLOAD_SETTLE_SECONDS
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Attachment, OutboxItem
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import message_id_of

pytestmark = pytest.mark.timeout(120)


# -- building mail ------------------------------------------------------------------------


def png(width: int, height: int, filler: int = 2000) -> bytes:
    """Bytes that start like a PNG of this size (enough for anyone reading its header)."""
    header = (
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big")
    )
    return header + b"\x08\x06\x00\x00\x00" + os.urandom(filler)


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = (
        b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x03" + b"\x00" * 9
    )
    return b"\xff\xd8" + app0 + sof0 + os.urandom(500) + b"\xff\xd9"


PDF = b"%PDF-1.4\n" + os.urandom(30_000) + b"\n%%EOF\n"


def mail_with(
    files: list[tuple[str, bytes, str]],
    *,
    n: int = 1,
    subject: str = "Broken screen",
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f'"Customer {n}" <customer{n}@example.org>'
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(f"a{n}", domain="example.org")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(f"Please see the attached files ({n}).\n")
    for filename, data, ctype in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(msg)


# -- reading Slack ------------------------------------------------------------------------


def ticket_posts(slack: Any) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.messages(CHANNEL)
        if (m.get("metadata") or {}).get("event_type") == "supportbot_ticket"
    ]


def thread_of(slack: Any, index: int = 0) -> tuple[str, list[dict[str, Any]]]:
    parent = wait_until(lambda: ticket_posts(slack)[index:], what="the ticket post")[0]["ts"]
    return parent, slack.thread(CHANNEL, parent)[1:]


def shared(slack: Any, parent: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    return wait_until(
        lambda: len(found := slack.shared_files(CHANNEL, parent)) >= count and found,
        timeout=timeout,
        what=f"{count} files in the thread",
    )


def notes(slack: Any, parent: str) -> list[str]:
    return [
        m["text"]
        for m in slack.thread(CHANNEL, parent)[1:]
        if (m.get("metadata") or {}).get("event_type") == "supportbot_notice"
    ]


def upload_rows(database_url: str) -> list[OutboxItem]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(
                session.scalars(
                    select(OutboxItem)
                    .where(OutboxItem.kind == SLACK_ATTACHMENT_UPLOAD)
                    .order_by(OutboxItem.id)
                )
            )
    finally:
        engine.dispose()


def attachment_rows(database_url: str) -> list[Attachment]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(Attachment).order_by(Attachment.id)))
    finally:
        engine.dispose()


# -- tests ----------------------------------------------------------------------------------


def test_files_reach_the_thread_after_their_post_with_the_bytes_sent(imap, slack, database_url):
    screenshot = png(1280, 800, filler=50_000)
    first = mail_with([("screenshot.png", screenshot, "image/png"), ("invoice.pdf", PDF, "application/pdf")])
    log_file = b"2026-11-20 ERROR something broke\n" * 200
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    with running_bot(env):
        imap.append(first)
        parent, _ = thread_of(slack)
        files = shared(slack, parent, 2)
        imap.append(
            mail_with(
                [("server.log", log_file, "text/plain")],
                subject="Re: Broken screen",
                in_reply_to=message_id_of(first),
            )
        )
        files = shared(slack, parent, 3)
        wait_until(
            lambda: all(a.slack_file_id for a in attachment_rows(database_url)), what="file ids recorded"
        )
        time.sleep(0.5)  # room for a wrong second upload

    assert [f["name"] for f in files] == ["screenshot.png", "invoice.pdf", "server.log"]
    assert [f["content"] for f in files] == [screenshot, PDF, log_file]
    assert len(slack.files) == 3
    # The follow-up's own thread post comes first, then its file; the first mail's files
    # come right after the ticket post they belong to.
    replies = slack.thread(CHANNEL, parent)[1:]
    kinds = [
        "file:" + m["files"][0]["name"] if m.get("files") else (m.get("metadata") or {}).get("event_type")
        for m in replies
    ]
    assert kinds == ["file:screenshot.png", "file:invoice.pdf", "supportbot_message", "file:server.log"]
    # conversations.replies shows each file as Slack does: name, title, size, who shared it.
    shown = replies[0]["files"][0]
    assert (shown["name"], shown["title"], shown["size"], shown["user"]) == (
        "screenshot.png",
        "screenshot.png",
        len(screenshot),
        "U0BOT",
    )
    assert [a.slack_file_id for a in attachment_rows(database_url)] == [f["id"] for f in files]
    assert all(row.status == "done" for row in upload_rows(database_url))
    # Through the real client: URL, upload, then complete with the channel and thread.
    completes = slack.calls("files.completeUploadExternal")
    assert [(c.args["channel_id"], c.args["thread_ts"]) for c in completes] == [(CHANNEL, parent)] * 3


def test_signature_logos_stay_out_and_pasted_screenshots_come_in(imap, slack, database_url):
    logo = png(180, 60, filler=3000)
    icon = jpeg(32, 32)
    pasted = png(1600, 900, filler=40_000)
    attached_small = png(64, 64, filler=500)  # attached, not shown by the HTML: the customer chose it
    msg = EmailMessage()
    msg["From"] = "Customer <customer@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Look at this"
    msg["Message-ID"] = make_msgid("logo", domain="example.org")
    msg.set_content("See below.\n")
    msg.add_alternative(
        '<p>See below.</p><img src="cid:shot@x"><p>--<br><img src="cid:logo@x"> <img src="cid:icon%40x"></p>',
        subtype="html",
    )
    html = msg.get_payload()[1]
    html.add_related(logo, "image", "png", cid="<logo@x>", filename="logo.png")
    html.add_related(pasted, "image", "png", cid="<shot@x>", filename="image001.png")
    html.add_related(icon, "image", "jpeg", cid="<icon@x>", filename="linkedin.jpg")
    msg.add_attachment(attached_small, maintype="image", subtype="png", filename="small.png")
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    with running_bot(env):
        imap.append(bytes(msg))
        parent, _ = thread_of(slack)
        wait_until(
            lambda: (rows := upload_rows(database_url)) and all(r.status == "done" for r in rows),
            what="every upload row done",
        )
        time.sleep(0.3)
    names = [f["name"] for f in slack.shared_files(CHANNEL, parent)]
    assert names == ["image001.png", "small.png"]
    assert slack.shared_files(CHANNEL, parent)[0]["content"] == pasted
    # The card still lists every part; the logos are simply not uploaded.
    assert {a.filename for a in attachment_rows(database_url)} == {
        "logo.png",
        "image001.png",
        "linkedin.jpg",
        "small.png",
    }


def test_decoration_rule_reads_the_picture_not_the_declared_type():
    html = '<img src="cid:a@x">'

    def part(data: bytes, cid: str | None = "a@x", ctype: str = "image/png") -> AttachmentPart:
        return AttachmentPart("x", ctype, cid, True, data)

    assert image_dimensions(jpeg(640, 480)) == (640, 480)
    assert image_dimensions(png(3, 2)) == (3, 2)
    assert is_decoration(part(png(200, 80)), html)
    assert not is_decoration(part(png(1200, 80)), html), "a wide screenshot of a toolbar is content"
    assert not is_decoration(part(png(200, 80, filler=100_000)), html), "heavy for a logo"
    assert not is_decoration(part(png(200, 80), cid="b@x"), html), "not shown by the HTML: attached"
    assert not is_decoration(part(png(200, 80), cid=None), html)
    # Declared a picture, but not one: judged by its bytes, a small unknown thing shown inline.
    assert is_decoration(part(b"not a picture", ctype="image/png"), html)
    assert not is_decoration(part(os.urandom(20_000), ctype="image/png"), html)


def test_a_part_over_the_limit_gets_a_note_and_the_rest_still_come(imap, slack, database_url):
    big = os.urandom(1_600_000)
    small = b"small file\n"
    env = bot_env(
        slack_url=slack.base_url, imap=imap, database_url=database_url, ATTACHMENT_UPLOAD_MAX_MB="1"
    )
    with running_bot(env):
        imap.append(
            mail_with([("<!channel> backup.zip", big, "application/zip"), ("notes.txt", small, "text/plain")])
        )
        parent, _ = thread_of(slack)
        shared(slack, parent, 1)
        wait_until(lambda: notes(slack, parent), what="the size note")
        time.sleep(0.5)
    assert [f["name"] for f in slack.shared_files(CHANNEL, parent)] == ["notes.txt"]
    assert slack.calls("files.getUploadURLExternal")[0].args["length"] == str(len(small))
    [note] = notes(slack, parent)
    assert "&lt;!channel&gt; backup.zip" in note and "<!channel>" not in note
    assert "1.5 MB" in note and "1 MB upload limit" in note and "mailbox" in note
    # The note comes before the next file: the thread reads in the mail's order.
    replies = slack.thread(CHANNEL, parent)[1:]
    assert [bool(m.get("files")) for m in replies] == [False, True]


def test_uploading_off_and_automatic_mail_upload_nothing(imap, slack, database_url):
    env = bot_env(
        slack_url=slack.base_url, imap=imap, database_url=database_url, ATTACHMENT_UPLOAD_MAX_MB="0"
    )
    with running_bot(env):
        imap.append(mail_with([("a.pdf", PDF, "application/pdf")]))
        wait_until(
            lambda: (rows := upload_rows(database_url)) and rows[0].status == "done", what="the upload row"
        )
    assert slack.files == []
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    with running_bot(env):
        imap.append(
            mail_with(
                [("bounce.pdf", PDF, "application/pdf")],
                n=2,
                subject="Out of office",
                headers={"Auto-Submitted": "auto-replied"},
            )
        )
        wait_until(lambda: len(ticket_posts(slack)) == 2, what="the auto-reply's ticket")
        time.sleep(1.0)
    assert slack.files == []
    assert len(upload_rows(database_url)) == 1, "the automatic mail queued no upload"


def test_a_slow_upload_does_not_hold_up_the_next_ticket(imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    slack.upload_seconds = 6.0  # a large file over a slow uplink
    with running_bot(env):
        imap.append(mail_with([("report.pdf", PDF, "application/pdf")], n=1))
        thread_of(slack, 0)
        wait_until(lambda: slack.calls("files.getUploadURLExternal"), what="the upload to begin")
        began = time.monotonic()
        imap.append(mail_with([], n=2, subject="Unrelated question"))
        thread_of(slack, 1)
        posted = time.monotonic()
        parent = ticket_posts(slack)[0]["ts"]
        files = shared(slack, parent, 1)
    # The second ticket reached the channel while the first one's file was still uploading.
    assert posted - began < 4.0, f"the new ticket waited {posted - began:.1f} s behind an upload"
    assert not slack.calls("files.completeUploadExternal")[0].at < posted
    assert files[0]["content"] == PDF


def test_a_429_on_the_upload_is_retried_after_retry_after(imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    slack.fail_next("files.getUploadURLExternal", status=429, retry_after=2)
    with running_bot(env):
        imap.append(mail_with([("report.pdf", PDF, "application/pdf")]))
        parent, _ = thread_of(slack)
        files = shared(slack, parent, 1)
        time.sleep(0.5)
    asked = slack.calls("files.getUploadURLExternal")
    assert [c.status for c in asked] == [429, 200]
    assert asked[1].at - asked[0].at >= 2.0, "no try sooner than Retry-After"
    assert len(slack.files) == 1 and files[0]["content"] == PDF


def test_a_file_slack_stored_but_answered_500_for_is_not_uploaded_twice(imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    slack.fail_next("files.completeUploadExternal", status=500, after_effect=True)
    data = png(900, 700, filler=20_000)
    with running_bot(env):
        imap.append(mail_with([("photo.png", data, "image/png"), ("photo2.png", data, "image/png")]))
        parent, _ = thread_of(slack)
        wait_until(
            lambda: all(a.slack_file_id for a in attachment_rows(database_url)), what="file ids recorded"
        )
        time.sleep(1.0)
    files = slack.shared_files(CHANNEL, parent)
    assert [f["name"] for f in files] == ["photo.png", "photo2.png"]
    assert [c.status for c in slack.calls("files.completeUploadExternal")] == [500, 200]
    # The retry looked in the thread and adopted the file Slack had stored, but only once
    # Slack had had time to share it there (real Slack shares a moment after completing).
    failed_at = slack.calls("files.completeUploadExternal")[0].at
    looked = [c.at for c in slack.calls("conversations.replies") if c.at > failed_at]
    assert looked and min(looked) - failed_at >= UPLOAD_SETTLE_SECONDS - 0.5
    rows = upload_rows(database_url)
    assert rows[0].result.get("adopted") is True
    assert [a.slack_file_id for a in attachment_rows(database_url)] == [f["id"] for f in files]


def test_a_file_slack_refuses_gets_one_note_and_does_not_hold_up_the_next(imap, slack, database_url):
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    slack.error_next("files.completeUploadExternal", "file_type_not_allowed")
    with running_bot(env):
        imap.append(
            mail_with(
                [
                    ("setup.exe", b"MZ" + os.urandom(4000), "application/octet-stream"),
                    ("ok.pdf", PDF, "application/pdf"),
                ]
            )
        )
        parent, _ = thread_of(slack)
        shared(slack, parent, 1)
        wait_until(lambda: notes(slack, parent), what="the refusal note")
        time.sleep(1.0)
    assert [f["name"] for f in slack.shared_files(CHANNEL, parent)] == ["ok.pdf"]
    [note] = notes(slack, parent)
    assert "setup.exe" in note and "could not be uploaded" in note and "file_type_not_allowed" in note
    assert [r.status for r in upload_rows(database_url)] == ["dead", "done"]
    assert len(slack.calls("files.completeUploadExternal")) == 2, "the refused file was not tried again"


def test_a_hostile_file_name_is_made_safe_and_stays_recognisable(imap, slack, database_url):
    hostile = "<!channel> ../../etc/passwd\x00\u202egnp.exe\r\n" + "x" * 5000 + ".png"
    data = png(800, 600, filler=5000)
    msg = EmailMessage()
    msg["From"] = "Mallory <mallory@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "<!here> see file"
    msg["Message-ID"] = make_msgid("hostile", domain="example.org")
    msg.set_content("hi\n")
    msg.add_attachment(data, maintype="image", subtype="png", filename=hostile)
    env = bot_env(slack_url=slack.base_url, imap=imap, database_url=database_url)
    with running_bot(env):
        imap.append(bytes(msg))
        parent, _ = thread_of(slack)
        [uploaded] = shared(slack, parent, 1)
    name = uploaded["name"]
    assert uploaded["content"] == data
    assert len(name) <= 200 and name.endswith(".png")
    assert "channel" in name and "passwd" in name
    for bad in ("<", ">", "/", "\\", "\x00", "\u202e", "\r", "\n"):
        assert bad not in name, repr(bad)
    assert not any(unicodedata.category(ch).startswith("C") for ch in name)
    assert uploaded["title"] == name
    post = ticket_posts(slack)[0]
    assert "<!channel>" not in json.dumps(post["blocks"]) and "<!here>" not in post["text"]


def test_an_upload_is_not_skipped_when_its_post_lands_between_two_reads(slack, session_factory):
    """The upload reads the ticket's ts, then asks whether the post is still queued; a post
    recorded between the two looked set aside, and the file was skipped for good."""
    from datetime import UTC, datetime

    from slack_sdk import WebClient
    from sqlalchemy import event, update

    from bot.outbox.queue import SLACK_TICKET_POST
    from bot.slack.upload_delivery import AttachmentUploadHandler
    from bot.storage.models import Ticket
    from bot.tickets.ingest import ingest_email

    data = png(640, 480, filler=8000)
    with session_factory() as session, session.begin():
        ingest_email(
            session,
            mail_with([("photo.png", data, "image/png")]),
            mailbox="INBOX",
            channel=CHANNEL,
            now=datetime.now(UTC),
        )
    client = WebClient(token="xoxb-test", base_url=slack.base_url)
    parent = client.chat_postMessage(channel=CHANNEL, text="the ticket's card")["ts"]
    engine = session_factory.kw["bind"]
    landed = []

    def post_lands(conn, cursor, statement, *_args):
        # The Slack worker records the post (ts and row done, one commit) right after the
        # upload's first read of the ticket.
        if landed or "messages.html" not in statement:
            return
        landed.append(True)
        with session_factory() as other, other.begin():
            other.execute(update(Ticket).values(slack_ts=parent))
            other.execute(
                update(OutboxItem).where(OutboxItem.kind == SLACK_TICKET_POST).values(status="done")
            )

    with session_factory() as session:
        upload = session.scalars(select(OutboxItem).where(OutboxItem.kind == SLACK_ATTACHMENT_UPLOAD)).one()
        session.expunge(upload)
    event.listen(engine, "after_cursor_execute", post_lands)
    try:
        result = AttachmentUploadHandler(client, session_factory, None).deliver(upload)
    finally:
        event.remove(engine, "after_cursor_execute", post_lands)
    assert landed, "the post never landed mid-delivery: the test did not test the race"
    assert "skipped" not in result and result.get("file_id"), result
    assert [f["content"] for f in slack.shared_files(CHANNEL, parent)] == [data]

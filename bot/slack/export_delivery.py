"""The outbox handler that answers a right-of-access request: builds the customer's ZIP and
uploads it into the asking manager's DM, never a channel.

Built at delivery, not when asked: Slack wants its answer within three seconds, the build reads
every row and mail of the customer, and a crash in between leaves the row to be tried again.
The ZIP is written to a temporary file and streamed to Slack's upload URL (files.
getUploadURLExternal, a POST of the bytes, files.completeUploadExternal), so its size costs disk,
not memory: slack_sdk's files_upload_v2 would read the whole file into memory first.
"""

from __future__ import annotations

import logging
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from bot.outbox.worker import PermanentFailure, RetryLater
from bot.privacy.export import ExportContents, export_filename, write_export
from bot.privacy.holdings import NotAnAddress
from bot.slack.upload_delivery import UPLOAD_SETTLE_SECONDS
from bot.slack.web_api import SlackHandler, call_slack
from bot.storage.db import reading
from bot.storage.models import OutboxItem

log = logging.getLogger(__name__)

_UPLOAD_TIMEOUT = 300.0
_CHUNK = 1 << 16


def export_comment(contents: ExportContents) -> str:
    # No address: the file's name says whose it is, and goes when the file is deleted; this
    # comment would stay in the DM after.
    if not contents.anything:
        return "We hold no data about this address: the archive says so, for your answer to them."
    return (
        f"Everything we hold about this customer: {sum(contents.rows.values()):,} records, "
        f"{contents.emails:,} emails and {contents.attachments:,} attachments. Send it to them "
        "(within a month of their request), then delete it here: Slack keeps files until they are deleted."
    )


class CustomerExportHandler(SlackHandler):
    """payload: `user` (the manager), `address`. The address leaves the row once it is done."""

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        user, address = str(item.payload.get("user") or ""), str(item.payload.get("address") or "")
        if not user or not address:
            raise PermanentFailure("an export request without a manager or an address")
        opened = call_slack(self.client.conversations_open, users=user)
        channel = str((opened.get("channel") or {}).get("id") or "")
        name = export_filename(address, item.created_at, item.id)
        if item.attempts > 1 and (found := self._shared(channel, item, name)) is not None:
            log.info("export %s was already shared as %s; not uploading again", item.id, found)
            return {"channel": channel, "file_id": found, "adopted": True}
        with tempfile.TemporaryDirectory(prefix="supportbot-export-") as folder:
            path = Path(folder) / name
            try:
                with reading(self.factory) as session:
                    contents = write_export(session, address, path, now=item.created_at)
            except NotAnAddress as exc:
                raise PermanentFailure(str(exc)) from None
            file_id = self._upload(path, name, channel, export_comment(contents))
        return {"channel": channel, "file_id": file_id, "records": sum(contents.rows.values())}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        # The request is answered: the outbox need not keep whose data it was.
        item.payload = {"user": item.payload.get("user"), "address": None}

    def _upload(self, path: Path, name: str, channel: str, comment: str) -> str:
        size = path.stat().st_size
        step = call_slack(self.client.files_getUploadURLExternal, filename=name, length=size)
        url, file_id = str(step.get("upload_url") or ""), str(step.get("file_id") or "")
        if not url or not file_id:
            raise RetryLater("Slack gave no upload URL")
        with path.open("rb") as data:
            request = urllib.request.Request(
                url,
                data=iter(lambda: data.read(_CHUNK), b""),
                method="POST",
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
            try:
                with urllib.request.urlopen(request, timeout=_UPLOAD_TIMEOUT) as answer:
                    answer.read()
            except urllib.error.HTTPError as exc:
                if exc.code >= 500:
                    raise RetryLater(f"the upload URL answered {exc.code}") from None
                raise PermanentFailure(f"the upload URL refused the file ({exc.code})") from None
            except OSError as exc:
                raise RetryLater(f"cannot reach the upload URL: {exc}") from None
        try:
            call_slack(
                self.client.files_completeUploadExternal,
                files=[{"id": file_id, "title": name}],
                channel_id=channel,
                initial_comment=comment,
            )
        except RetryLater as exc:
            if exc.after is not None:
                raise  # Retry-After: Slack did nothing, and said when to come back
            # A 5xx or a lost answer may hide a finished upload, which Slack shares a moment
            # later: the retry looks for it only once it can show.
            raise RetryLater(exc.reason, after=UPLOAD_SETTLE_SECONDS) from None
        return file_id

    def _shared(self, channel: str, item: OutboxItem, name: str) -> str | None:
        """A file of this name the bot already shared in the DM (an earlier try got through)."""
        bot_user = str(call_slack(self.client.auth_test).get("user_id") or "")
        for message in self._recent(channel, item, None):
            for shared in message.get("files") or []:
                if shared.get("name") == name and (shared.get("user") or message.get("user")) == bot_user:
                    return str(shared.get("id"))
        return None

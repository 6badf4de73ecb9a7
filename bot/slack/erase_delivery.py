"""Delivering an erasure's Slack effects: a message replaced by one short line, a file deleted.

Both are safe to repeat (an edit to the same words, a delete of a deleted file), so a try
after a crash needs no look first. What is gone already (the message deleted by someone,
the channel archived, the file removed) is done, not a failure: there is nothing left to erase.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from bot.outbox.worker import PermanentFailure
from bot.privacy.erasure_effects import finish_erasures
from bot.slack.web_api import SlackHandler, call_slack
from bot.storage.models import OutboxItem

log = logging.getLogger(__name__)

ERASED_TEXT = "Erased on request."
ERASED_CARD_TEXT = "Ticket erased on request: the customer's data was removed."
# Nothing left to replace or delete.
_GONE = ("message_not_found", "channel_not_found", "is_archived", "file_not_found", "file_deleted")
# A message that cannot be edited any more can still be deleted.
_NOT_EDITABLE = ("cant_update_message", "edit_window_closed")


def _error(exc: PermanentFailure) -> str:
    return str(exc).removeprefix("Slack refused: ")


def erased_blocks(card: bool) -> list[dict[str, Any]]:
    # The card collapses to one line: no buttons, no fields, nothing of the customer.
    return [
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"_{ERASED_CARD_TEXT if card else ERASED_TEXT}_"}],
        }
    ]


class _ErasureHandler(SlackHandler):
    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        finish_erasures(session, item.delivered_at or item.created_at, except_item=item.id)


class EraseMessageHandler(_ErasureHandler):
    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        channel, ts = str(item.payload["channel"]), str(item.payload["ts"])
        card = bool(item.payload.get("card"))
        try:
            call_slack(
                self.client.chat_update,
                channel=channel,
                ts=ts,
                text=ERASED_CARD_TEXT if card else ERASED_TEXT,
                blocks=erased_blocks(card),
                attachments=[],
            )
        except PermanentFailure as exc:
            error = _error(exc)
            if error in _GONE:
                return {"skipped": error}
            if error not in _NOT_EDITABLE:
                raise
            call_slack(self.client.chat_delete, channel=channel, ts=ts)
            return {"deleted": True}
        return {"erased": True}


class DeleteFileHandler(_ErasureHandler):
    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        try:
            call_slack(self.client.files_delete, file=str(item.payload["file"]))
        except PermanentFailure as exc:
            error = _error(exc)
            if error in _GONE:
                return {"skipped": error}
            raise
        return {"deleted": True}

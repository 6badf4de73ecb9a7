"""An erasure's Slack effects against the stand-in: repeatable, and done when nothing is left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.outbox.queue import SLACK_DELETE_FILE, SLACK_ERASE_MESSAGE
from bot.slack.erase_delivery import ERASED_CARD_TEXT, ERASED_TEXT, DeleteFileHandler, EraseMessageHandler
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import OutboxItem
from tests.support.harness import CHANNEL

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def row(kind: str, payload: dict, attempts: int = 1) -> OutboxItem:
    return OutboxItem(id=1, kind=kind, lane="x", payload=payload, attempts=attempts, created_at=NOW)


@pytest.fixture
def client(slack) -> WebClient:
    return WebClient(token="xoxb-test-token", base_url=slack.base_url)


def upload(client: WebClient, thread_ts: str) -> str:
    data = client.files_upload_v2(
        channel=CHANNEL, thread_ts=thread_ts, content=b"secret", filename="rossi.pdf"
    )
    return str(data["file"]["id"])


def test_a_card_and_a_thread_message_read_erased_and_again_changes_nothing(slack, client, database_url):
    handler = EraseMessageHandler(client, make_sessionmaker(make_engine(database_url)))
    card = client.chat_postMessage(channel=CHANNEL, text="Ticket from Maria Rossi")["ts"]
    reply = client.chat_postMessage(channel=CHANNEL, thread_ts=card, text="Maria writes again")["ts"]
    for _ in range(2):  # a try after a crash repeats the edit: the same words again
        assert handler.deliver(row(SLACK_ERASE_MESSAGE, {"channel": CHANNEL, "ts": card, "card": True}))
        assert handler.deliver(row(SLACK_ERASE_MESSAGE, {"channel": CHANNEL, "ts": reply}))
    shown = slack.thread(CHANNEL, card)
    assert [m["text"] for m in shown] == [ERASED_CARD_TEXT, ERASED_TEXT]
    assert "Maria" not in str(shown)


def test_a_message_deleted_meanwhile_is_nothing_left_to_erase(slack, client, database_url):
    handler = EraseMessageHandler(client, make_sessionmaker(make_engine(database_url)))
    ts = client.chat_postMessage(channel=CHANNEL, text="Maria")["ts"]
    client.chat_delete(channel=CHANNEL, ts=ts)
    result = handler.deliver(row(SLACK_ERASE_MESSAGE, {"channel": CHANNEL, "ts": ts}))
    assert result == {"skipped": "message_not_found"}


def test_files_delete_as_slack_documents_it(slack, client, database_url):
    handler = DeleteFileHandler(client, make_sessionmaker(make_engine(database_url)))
    parent = client.chat_postMessage(channel=CHANNEL, text="card")["ts"]
    file_id = upload(client, parent)
    assert handler.deliver(row(SLACK_DELETE_FILE, {"file": file_id})) == {"deleted": True}
    # The message that shared it keeps a tombstone; name and bytes are gone.
    assert "rossi" not in str(slack.thread(CHANNEL, parent)) + str(slack.shared_files(CHANNEL))
    with pytest.raises(SlackApiError) as refused:
        client.files_delete(file=file_id)
    assert refused.value.response["error"] == "file_deleted"
    with pytest.raises(SlackApiError) as unknown:
        client.files_delete(file="F0NOSUCH")
    assert unknown.value.response["error"] == "file_not_found"
    # Delivered again after a crash: already deleted counts as done.
    assert handler.deliver(row(SLACK_DELETE_FILE, {"file": file_id})) == {"skipped": "file_deleted"}

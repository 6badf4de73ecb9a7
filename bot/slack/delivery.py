"""The Slack outbox worker's handlers, one per kind of effect.

Each lives with its kind: a ticket's own messages (bot/slack/ticket_delivery.py), plain
posts, topics and user groups (bot/slack/post_delivery.py), attachments
(bot/slack/upload_delivery.py), and pages with their Do Not Disturb look-ups
(bot/slack/page_delivery.py), customers' data exports (bot/slack/export_delivery.py),
all over bot/slack/web_api.py.
"""

from __future__ import annotations

from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.outbox.queue import (
    SLACK_ATTACHMENT_UPLOAD,
    SLACK_CUSTOMER_EXPORT,
    SLACK_DELETE_FILE,
    SLACK_DND_CHECK,
    SLACK_ERASE_MESSAGE,
    SLACK_PAGE,
    SLACK_PAGE_CLOSE,
    SLACK_POST,
    SLACK_SET_TOPIC,
    SLACK_THREAD_MESSAGE,
    SLACK_TICKET_NOTICE,
    SLACK_TICKET_POST,
    SLACK_TICKET_REFRESH,
    SLACK_USERGROUP,
)
from bot.outbox.worker import Handler
from bot.slack.erase_delivery import DeleteFileHandler, EraseMessageHandler
from bot.slack.export_delivery import CustomerExportHandler
from bot.slack.page_delivery import DndCheckHandler, PageCloseHandler, PageHandler
from bot.slack.post_delivery import PlainPostHandler, TopicHandler, UsergroupHandler
from bot.slack.ticket_delivery import (
    ThreadMessageHandler,
    TicketNoticeHandler,
    TicketPostHandler,
    TicketRefreshHandler,
)
from bot.slack.upload_delivery import AttachmentUploadHandler, attachment_refused

# attachment_refused: the composition root wires it as the Slack worker's `on_dead`.
__all__ = ["attachment_refused", "slack_handlers"]


def slack_handlers(
    client: WebClient, factory: sessionmaker[Session], settings: Settings | None = None
) -> dict[str, Handler]:
    return {
        SLACK_TICKET_NOTICE: TicketNoticeHandler(client, factory),
        SLACK_PAGE: PageHandler(client, factory, settings),
        SLACK_PAGE_CLOSE: PageCloseHandler(client, factory),
        SLACK_DND_CHECK: DndCheckHandler(client, factory),
        SLACK_SET_TOPIC: TopicHandler(client, factory),
        SLACK_USERGROUP: UsergroupHandler(client, factory, settings.managers if settings else ()),
        SLACK_TICKET_POST: TicketPostHandler(client, factory),
        SLACK_TICKET_REFRESH: TicketRefreshHandler(client, factory),
        SLACK_THREAD_MESSAGE: ThreadMessageHandler(client, factory),
        SLACK_POST: PlainPostHandler(client, factory),
        SLACK_ATTACHMENT_UPLOAD: AttachmentUploadHandler(client, factory, settings),
        SLACK_CUSTOMER_EXPORT: CustomerExportHandler(client, factory),
        SLACK_ERASE_MESSAGE: EraseMessageHandler(client, factory),
        SLACK_DELETE_FILE: DeleteFileHandler(client, factory),
    }

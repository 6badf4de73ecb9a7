"""The mailbox side of an erasure: the customer's mail flagged there, and deleted on request.

The outbox row names the mail by UID (under the UIDVALIDITY of the erasure's time) and by
the salted hashes of its Message-ID and of its sender and date. A UID is trusted only once
the mail at that UID hashes the same; a mail not found there (UIDVALIDITY changed, mail moved)
is looked for by its hashes across the folder. Flagging and deleting twice changes nothing,
so a try after a crash repeats the whole step.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.mail.oauth_token import TokenSource
from bot.mail.parse import MalformedEmailError, parse_email
from bot.mail.xoauth2 import MailLoginRefused, imap_login
from bot.outbox.queue import IMAP_ERASE
from bot.outbox.worker import Handler, PermanentFailure, RetryLater
from bot.privacy.digests import SALT_NAME, message_id_digest, sender_date_digest
from bot.privacy.erasure_effects import finish_erasures
from bot.storage.db import reading
from bot.storage.models import AppSecret, OutboxItem

log = logging.getLogger(__name__)

ERASED_KEYWORD = b"$SupportbotErased"
_HEADERS = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID FROM DATE)]"
_SCAN_BATCH = 500


def mailbox_key(settings: Settings) -> str:
    # As the watcher names it (bot/mail/watcher.py MailboxSettings.mailbox_key).
    return f"{settings.imap_user}@{settings.imap_host}/{settings.imap_folder}"


def _digests(salt: bytes, header: bytes) -> set[str]:
    try:
        parsed = parse_email(header + b"\r\n")
    except (MalformedEmailError, ValueError):
        return set()
    found = set()
    if parsed.message_id:
        found.add(message_id_digest(salt, parsed.message_id))
    if parsed.from_address and parsed.date is not None:
        found.add(sender_date_digest(salt, parsed.from_address, parsed.date))
    return found


def _header_of(data: dict[bytes, Any]) -> bytes:
    for key, value in data.items():
        if key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
            return value
    return b""


class MailboxEraseHandler:
    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        timeout: float = 60.0,
        token_source: TokenSource | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.timeout = timeout
        self.token_source = token_source  # MAIL_AUTH: log in as the watcher does, with a token

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        payload = item.payload
        if payload.get("mailbox") != mailbox_key(self.settings):
            # Mail read from a mailbox this bot no longer reads: the docs say to remove it there.
            return {"skipped": "not the configured mailbox"}
        with reading(self.factory) as session:
            salt_row = session.get(AppSecret, SALT_NAME)
        if salt_row is None:
            raise PermanentFailure("no erasure salt in the database")
        salt = salt_row.value.encode()
        wanted = set(payload.get("digests") or [])
        try:
            return self._erase(salt, wanted, payload)
        except MailLoginRefused as exc:
            raise RetryLater(f"mailbox: {exc}") from None
        except (IMAPClientError, OSError, EOFError) as exc:
            raise RetryLater(f"mailbox: {type(exc).__name__}: {exc}") from None

    def _erase(self, salt: bytes, wanted: set[str], payload: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        client = IMAPClient(s.imap_host, port=s.imap_port, ssl=s.imap_ssl, timeout=self.timeout, use_uid=True)
        try:
            if self.token_source is not None:
                imap_login(client, s.imap_user, self.token_source)
            else:
                client.login(s.imap_user, s.imap_password)
            status = client.select_folder(s.imap_folder)
            uidvalidity = int(status[b"UIDVALIDITY"])
            targets: set[int] = set()
            if payload.get("uidvalidity") == uidvalidity:
                targets |= self._matching(client, salt, wanted, payload.get("uids") or [])
            if len(targets) < len(payload.get("uids") or []) or payload.get("uidvalidity") != uidvalidity:
                # Some mail is not where it was: look for it by its hashes.
                all_uids = client.search("ALL")
                for start in range(0, len(all_uids), _SCAN_BATCH):
                    targets |= self._matching(client, salt, wanted, all_uids[start : start + _SCAN_BATCH])
            if not targets:
                return {"flagged": 0}
            ordered = sorted(targets)
            client.add_flags(ordered, [SEEN, ERASED_KEYWORD])
            deleted = False
            if s.privacy.erase_from_mailbox:
                client.add_flags(ordered, [DELETED])
                # UID EXPUNGE removes only these; a plain EXPUNGE would also remove whatever
                # else someone marked deleted in the shared mailbox.
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(ordered)
                    deleted = True
            return {"flagged": len(ordered), "deleted": deleted}
        finally:
            try:
                client.logout()
            except Exception:
                with contextlib.suppress(Exception):
                    client.shutdown()

    def _matching(self, client: IMAPClient, salt: bytes, wanted: set[str], uids: Iterable[int]) -> set[int]:
        uids = list(uids)
        if not uids:
            return set()
        fetched = client.fetch(uids, [_HEADERS])
        return {uid for uid, data in fetched.items() if _digests(salt, _header_of(data)) & wanted}

    def record(self, session: Session, item: OutboxItem, result: dict[str, Any]) -> None:
        finish_erasures(session, item.delivered_at or item.created_at, except_item=item.id)


def mailbox_erase_handlers(
    settings: Settings, factory: sessionmaker[Session], token_source: TokenSource | None = None
) -> dict[str, Handler]:
    return {IMAP_ERASE: MailboxEraseHandler(settings, factory, token_source=token_source)}

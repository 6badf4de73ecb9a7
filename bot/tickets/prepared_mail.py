"""A fetched mail made ready to store, and what storing it gave."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bot.mail.parse import MalformedEmailError, ParsedEmail, parse_email

log = logging.getLogger(__name__)

Outcome = Literal["new_ticket", "follow_up", "duplicate"]

UNREADABLE_SUBJECT = "(unreadable email)"


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    ticket_id: int
    ticket_number: int
    message_id: int
    malformed: bool = False


@dataclass(frozen=True)
class PreparedMail:
    """One fetched mail, parsed (outside any transaction) and ready to store.

    `parsed` is None for mail we cannot read; `error` then says why, and the mail is
    kept raw as a flagged ticket.
    """

    raw: bytes
    uid: int | None
    parsed: ParsedEmail | None
    error: str | None = None

    @property
    def dedupe_key(self) -> str:
        if self.parsed is not None:
            # Stored cut to the column's width, so looked up cut the same way.
            return self.parsed.dedupe_key[:400]
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()


def prepare_mail(
    raw: bytes, *, mailbox: str, uid: int | None = None, own_addresses: Iterable[str] = ()
) -> PreparedMail:
    """Parse one mail; never raises for bad email content."""
    try:
        return PreparedMail(raw, uid, parse_email(raw, own_addresses=own_addresses))
    except MalformedEmailError as exc:
        return PreparedMail(raw, uid, None, str(exc))
    except Exception as exc:  # a parser bug must not stop the mailbox: keep the mail, flag it
        log.exception("parser failed on mailbox %s uid %s", mailbox, uid)
        return PreparedMail(raw, uid, None, f"parser error: {type(exc).__name__}: {exc}")

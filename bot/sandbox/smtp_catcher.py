"""A real SMTP server on loopback (aiosmtpd) that keeps what it is sent.

The test suite and the local sandbox both use it to see the bot's outgoing mail.
It can refuse recipients on demand (temporarily with 451, permanently with 550)
to exercise the outbox's retries.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from bot.sandbox.imap_server import free_port


@dataclass(frozen=True)
class CaughtMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, catcher: SmtpCatcher) -> None:
        self.catcher = catcher

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.catcher.refuse_rcpt:
            return self.catcher.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.catcher._receive(envelope)


class SmtpCatcher:
    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.mails: list[CaughtMail] = []
        self.refuse_rcpt: str | None = None  # e.g. "451 4.7.1 Greylisted" or "550 5.1.1 User unknown"
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> SmtpCatcher:
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpCatcher:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _receive(self, envelope: Any) -> str:
        with self._changed:
            content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
            self.mails.append(CaughtMail(envelope.mail_from, tuple(envelope.rcpt_tos), content))
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int = 1, timeout: float = 15.0) -> list[CaughtMail]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.mails) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.mails)} of {count} mails after {timeout}s")
                self._changed.wait(left)
            return list(self.mails)

"""Logging set-up that never prints a secret, whatever a library puts in a message."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable


class RedactSecrets(logging.Filter):
    """Replaces every known secret value in a formatted record with ***."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        # Short values would redact innocent text; real tokens and passwords are longer.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        changed = False
        for secret in self.secrets:
            if secret in message:
                message = message.replace(secret, "***")
                changed = True
            if secret in exc_text:
                exc_text = exc_text.replace(secret, "***")
                changed = True
        if changed:
            record.msg, record.args = message, None
            record.exc_text = exc_text or None
        return True


def configure_logging(level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # These print request bodies (tokens included) at DEBUG; keep them quieter.
    for noisy in ("slack_sdk", "slack_bolt", "urllib3", "imapclient", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))

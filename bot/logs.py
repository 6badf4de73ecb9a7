"""Logging set-up that never prints a secret, whatever a library puts in a message.

The sources keep secrets out of what they say (settings hide them from `repr`, errors name
a setting rather than echo its value); this is the net under them, for text we do not
write ourselves: library messages, server answers, tracebacks.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType

MASK = "***"
# Shorter values would mask innocent text; real tokens and passwords are longer.
_SHORTEST_SECRET = 6


def _usable(secrets: Iterable[str | None]) -> list[str]:
    # Longest first, so a secret containing another is masked whole.
    return sorted({s for s in secrets if s and len(s) >= _SHORTEST_SECRET}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret value in it replaced by ***."""
    for secret in _usable(secrets):
        text = text.replace(secret, MASK)
    return text


class RedactSecrets(logging.Filter):
    """Replaces every known secret value in a formatted record with ***."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = _usable(secrets)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


# Fields a log call may pass with `extra=`, kept in JSON lines so one ticket's or one
# outbox row's story can be searched for.
CONTEXT_FIELDS = ("ticket_id", "outbox_id")


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the
    exception text and context ids when there are any. A dozen lines of the standard
    library's json; not worth a dependency."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        # RedactSecrets has already formatted and cleaned the traceback into exc_text.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None, where: str
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("supportbot").critical("uncaught exception %s", where, exc_info=(kind, value, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "a thread"
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, f"in thread {name}")


def configure_logging(
    level: str = "INFO", secrets: Iterable[str | None] = (), log_format: str = "text"
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # These print request bodies (tokens included) at DEBUG; keep them quieter.
    for noisy in ("slack_sdk", "slack_bolt", "urllib3", "imapclient", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
    # Two INFO lines for every run of every job (the paging tick runs every 15 s) would
    # bury the bot's own lines; a job that fails is still logged, at ERROR.
    chosen = logging.getLevelName(level)
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING if chosen >= logging.INFO else chosen)
    # Python prints an exception nobody caught straight to stderr, past the filter above;
    # sent through logging instead, its traceback is redacted like any other.
    sys.excepthook = lambda kind, value, tb: _log_uncaught(kind, value, tb, "in the main thread")
    threading.excepthook = _uncaught_in_thread

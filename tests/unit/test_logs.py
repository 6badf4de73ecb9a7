"""LOG_FORMAT=json: one JSON object per line, secrets masked, ids where a call passed them."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError
from bot.logs import configure_logging
from tests.support.settings import make_settings

SECRET = "xoxb-super-secret-token"


class Captured:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    yield Captured(capsys)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    sys.excepthook, threading.excepthook = saved[2], saved[3]


def lines(stream: Captured) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_ids(captured: Captured) -> None:
    configure_logging("INFO", secrets=[SECRET], log_format="json")
    log = logging.getLogger("bot.outbox.worker")
    log.warning(
        "outbox item %s not delivered:\nSlack said %s", 7, SECRET, extra={"outbox_id": 7, "ticket_id": 3}
    )
    log.info("plain")
    first, second = lines(captured)
    assert first["level"] == "WARNING"
    assert first["logger"] == "bot.outbox.worker"
    assert first["message"] == "outbox item 7 not delivered:\nSlack said ***"
    assert (first["outbox_id"], first["ticket_id"]) == (7, 3)
    when = datetime.fromisoformat(str(first["time"]))
    assert when.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)
    assert "outbox_id" not in second and "exception" not in second
    assert SECRET not in captured.getvalue()


def test_an_exception_is_one_line_with_its_traceback_masked(captured: Captured) -> None:
    configure_logging("INFO", secrets=[SECRET], log_format="json")
    try:
        raise RuntimeError(f"refused token {SECRET}")
    except RuntimeError:
        logging.getLogger("bot").exception("delivery failed")
    (line,) = lines(captured)
    assert line["message"] == "delivery failed"
    assert "Traceback" in str(line["exception"]) and "refused token ***" in str(line["exception"])
    assert SECRET not in captured.getvalue()


def test_text_stays_the_default(captured: Captured) -> None:
    configure_logging("INFO")
    logging.getLogger("bot").info("hello")
    assert captured.getvalue().rstrip().endswith("INFO bot: hello")


def test_a_bad_log_format_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"^LOG_FORMAT must be text or json, got 'yaml'$"):
        make_settings("sqlite://", LOG_FORMAT="yaml")
    assert make_settings("sqlite://", LOG_FORMAT="JSON").log_format == "json"
    with pytest.raises(ConfigError, match=r"^METRICS_TOKEN must be at least 16 characters long$"):
        make_settings("sqlite://", METRICS_TOKEN="short-token")
    with pytest.raises(ConfigError, match=r"^METRICS_PORT must be a whole number"):
        make_settings("sqlite://", METRICS_PORT="nine")

"""Running the real bot against the stand-ins: in this process (fast, inspectable) or
as a `supportbot run` subprocess (for SIGKILL and replica tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from bot.app import SupportBot
from bot.clock import Clock
from bot.config import load_settings
from tests.support.settings import CHANNEL, SIGNING_SECRET, SUPPORT_ADDRESS

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class MailServer(Protocol):
    host: str
    port: int
    user: str
    password: str


def bot_env(
    *,
    slack_url: str,
    imap: MailServer,
    database_url: str,
    smtp_port: int = 2525,
    **overrides: str,
) -> dict[str, str]:
    """The settings a deploy script would give the bot, pointed at the stand-ins."""
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_url,
        "SUPPORT_CHANNEL": CHANNEL,
        "DATABASE_URL": database_url,
        "IMAP_HOST": imap.host,
        "IMAP_PORT": str(imap.port),
        "IMAP_USER": imap.user,
        "IMAP_PASSWORD": imap.password,
        "IMAP_SSL": "false",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "SUPPORT_ADDRESS": SUPPORT_ADDRESS,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "TIMEZONE": "Europe/Rome",
        # Real time runs through the night too: tests that want the acknowledgement ask for it.
        "AUTO_ACK": "false",
        # Nor the morning hand-over: started in business hours, the bot would post it first.
        "MORNING_HANDOVER": "false",
        "SLACK_PACE_SECONDS": "0",
        "LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


@contextmanager
def running_bot(env: Mapping[str, str], *, clock: Clock | None = None) -> Iterator[SupportBot]:
    """The whole bot in this process (schema already migrated by the database fixture)."""
    bot = SupportBot(load_settings(env=env), clock=clock)
    bot.start()
    try:
        wait_until(lambda: bot.leadership.is_leader, timeout=15, what="leadership")
        yield bot
    finally:
        bot.stop()


def wait_until(predicate: Any, *, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class BotProcess:
    """`supportbot run` as a child process, as an operator would start it."""

    def __init__(self, env: Mapping[str, str], workdir: Path, name: str = "bot") -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.env.pop("TEST_DATABASE_URL", None)
        self.workdir = workdir
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.log_path = workdir / f"{name}.log"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def announced_port() -> int | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: {self.log()}")
            for line in self.log().splitlines():
                if line.startswith("supportbot running: http://"):
                    return int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            return None

        self.port = wait_until(announced_port, timeout=timeout, what=f"{self.name} to start")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
            return dict(json.load(response))

    def is_leader(self) -> bool:
        try:
            return bool(self.health()["leader"])
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def __enter__(self) -> BotProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

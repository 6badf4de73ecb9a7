"""`supportbot run` without a Slack app: the real bot, wired to embedded stand-ins.

Slack's Web API is the stand-in the test suite uses (`SlackStandIn`), the mailbox a
real IMAP server (pymap) and outgoing mail a real SMTP server (aiosmtpd), all on
loopback; the bot itself is the unchanged `SupportBot` with a page at `/sandbox` that acts
as Slack's client. The page's commands and clicks reach the bot over Socket Mode (a local
WebSocket stand-in, bot/sandbox/socket_mode.py) or, with SANDBOX_TRANSPORT=http or without
the `websockets` package, as signed HTTP requests. Everything lives in a fresh temporary
directory that is removed on exit, so a sandbox never touches a real database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import logging.handlers
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.app import SupportBot, prepare_database
from bot.clock import OffsetClock
from bot.config import Settings
from bot.logs import configure_logging
from bot.sandbox.desk import SandboxDesk
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.page import SandboxPage
from bot.sandbox.seed import seed_mailbox, seed_rota, seed_workspace
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.smtp_catcher import SmtpCatcher
from bot.sandbox.team import CHANNEL, DATABASE_FILE, IMAP_PASSWORD, IMAP_USER
from bot.signals import StopSignal
from bot.web import Router

if TYPE_CHECKING:
    from bot.sandbox.socket_mode import SocketModeStandIn

log = logging.getLogger(__name__)

# The app-level token the bot presents to the Web API stand-in's apps.connections.open.
SANDBOX_APP_TOKEN = "xapp-1-A0SUPPORTBOT-1-sandbox"


def _socket_mode_for(settings: Settings, slack: SlackStandIn) -> SocketModeStandIn | None:
    """The Socket Mode stand-in when the sandbox runs over Socket Mode and can: its WebSocket
    server needs the `websockets` package, which a bare install may lack."""
    if settings.sandbox_transport != "socket":
        return None
    try:
        from bot.sandbox.socket_mode import SocketModeStandIn
    except ImportError:
        # Logged, so it comes after the line saying where to click (run_sandbox holds logs).
        log.warning(
            "the sandbox runs over HTTP: Socket Mode needs the websockets package (pip install websockets)"
        )
        return None
    return SocketModeStandIn(slack)


class SandboxBot(SupportBot):
    """The bot with the sandbox page added to its HTTP server."""

    def __init__(self, settings: Settings, *, clock: OffsetClock, page: SandboxPage) -> None:
        super().__init__(settings, clock=clock)
        self.page = page

    def _router(self) -> Router:
        router = super()._router()
        router.add("/sandbox", self.page)
        router.add_prefix("/sandbox/", self.page)
        return router


def _port_for(host: str, wanted: int) -> int:
    """HTTP_PORT if it is free, else any free port: a newcomer's port 3000 is often taken
    by another development server, and the sandbox should start anyway."""
    for port in ([wanted] if wanted else []) + [0]:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {host}")


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


class Sandbox:
    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.directory = Path(directory or tempfile.mkdtemp(prefix="supportbot-sandbox-"))
        self._own_dir = directory is None
        self.clock = OffsetClock()
        self.slack = SlackStandIn(channels=(CHANNEL,))
        self.imap = PymapServer(self.directory / "imap", user=IMAP_USER, password=IMAP_PASSWORD)
        self.smtp = SmtpCatcher()
        self.socket_mode = _socket_mode_for(settings, self.slack)
        port = _port_for(settings.http_host, settings.http_port)
        self.settings = dataclasses.replace(
            settings,
            slack_app_token=SANDBOX_APP_TOKEN if self.socket_mode else None,
            slack_api_url=self.slack.base_url,
            database_url=f"sqlite:///{self.directory / DATABASE_FILE}",
            imap_host=self.imap.host,
            imap_port=self.imap.port,
            smtp_host=self.smtp.host,
            smtp_port=self.smtp.port,
            http_port=port,
        )
        self.bot_url = f"http://{_loopback(settings.http_host)}:{port}"
        self.desk = SandboxDesk(
            settings=self.settings,
            slack=self.slack,
            mailbox=self.imap,
            smtp=self.smtp,
            clock=self.clock,
            bot_url=self.bot_url,
            socket_mode=self.socket_mode,
        )
        self.bot: SandboxBot | None = None

    @property
    def transport(self) -> str:
        return "Socket Mode" if self.socket_mode else "HTTP"

    @property
    def url(self) -> str:
        return f"{self.bot_url}/sandbox"

    @property
    def database_path(self) -> Path:
        return self.directory / DATABASE_FILE

    def start(self) -> None:
        self.slack.start()
        seed_workspace(self.slack)
        self.smtp.start()
        self.imap.start()
        if self.socket_mode is not None:
            # Before the bot: its start-up opens the socket through apps.connections.open.
            self.socket_mode.start()
        prepare_database(self.settings)
        self.bot = SandboxBot(self.settings, clock=self.clock, page=SandboxPage(self.desk))
        self.bot.start()
        seed_mailbox(self.imap)
        seed_rota(self.bot.factory, self.settings, self.clock)

    def stop(self) -> None:
        if self.bot is not None:
            self.bot.stop()
            self.bot = None
        stops = [self.imap.stop, self.smtp.stop, self.slack.stop]
        if self.socket_mode is not None:
            stops.insert(0, self.socket_mode.stop)
        for stop in stops:
            try:
                stop()
            except Exception:
                log.exception("stopping a sandbox stand-in failed")
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


def run_sandbox(settings: Settings) -> int:
    """What `supportbot run` does when no SLACK_BOT_TOKEN is configured."""
    configure_logging(
        settings.log_level, secrets=[settings.slack_signing_secret], log_format=settings.log_format
    )
    # aiosmtpd logs every connection at INFO; in the sandbox that drowns the bot's own lines;
    # the same for the Socket Mode stand-in's server; the bot's client logs its own sessions.
    for noisy in ("mail.log", "websockets.server"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # The first line a newcomer sees must be where to click: hold start-up's log lines
    # until it is printed (an error is printed at once, with everything before it).
    root = logging.getLogger()
    console = root.handlers[0]
    held = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.ERROR, target=console)
    root.handlers[:] = [held]

    def release() -> None:
        root.handlers[:] = [console]
        held.flush()
        held.close()

    stop = StopSignal()
    sandbox = Sandbox(settings)
    try:
        sandbox.start()
    except Exception as exc:
        release()
        log.exception("the sandbox did not start")
        print(f"supportbot: the sandbox did not start: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            sandbox.stop()
        return 1
    print(
        f"supportbot sandbox: {sandbox.url} (no SLACK_BOT_TOKEN, so Slack, the mailbox and SMTP are "
        f"local stand-ins; the page reaches the bot over {sandbox.transport}; data in "
        f"{sandbox.database_path}, deleted on exit; Ctrl-C to stop)",
        flush=True,
    )
    release()
    log.info("sandbox ready: Slack stand-in %s, IMAP %s:%s, SMTP %s:%s", *_where(sandbox))
    stop.wait()
    sandbox.stop()
    return 0


def _where(sandbox: Sandbox) -> tuple[Any, ...]:
    return (
        sandbox.slack.base_url,
        sandbox.imap.host,
        sandbox.imap.port,
        sandbox.smtp.host,
        sandbox.smtp.port,
    )

"""Shared set-up for the benchmarks: the same stand-ins and database the tests use."""

from __future__ import annotations

import contextlib
import platform
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.app import SupportBot
from bot.clock import Clock, OffsetClock
from bot.mail.watcher import _server_spoke
from bot.sandbox.imap_server import MailboxOps
from bot.storage.db import upgrade
from rota import store
from rota.store import StaffMember
from tests.support.harness import wait_until


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


@contextmanager
def fresh_sqlite() -> Iterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        upgrade(url)
        yield url, Path(tmp)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# The bare client's pace, like the benchmarks': the next mail a little over a second after
# the last one was seen, so the floor meets the server's IDLE timing as the bot does.
FLOOR_GAP_SECONDS = 1.1


def idle_floor(
    imap: MailboxOps, mails: Sequence[bytes], *, folder: str = "Floor", gap: float = FLOOR_GAP_SECONDS
) -> list[float]:
    """The physical floor: seconds from before a new connection APPENDs each mail to a bare
    IMAP client, idling on `folder`, having SEARCHed and FETCHed it (what the bot's watcher
    does before any of its own work).

    Measured the same way as the benchmarks measure the bot: one mail at a time, each `gap`
    seconds after the previous one was fetched. An IMAP server's IDLE notification has a
    timing of its own (pymap looks for changes once a second from the start of the IDLE,
    Dovecot waits about half a second), which this floor includes as the bot's figure does.
    """
    from imapclient import IMAPClient  # why: only the benchmarks need a second client

    with imap.client() as admin:
        if not admin.folder_exists(folder):
            admin.create_folder(folder)
    client = IMAPClient(imap.host, port=imap.port, ssl=False, timeout=30, use_uid=True)
    latencies: list[float] = []
    try:
        client.login(imap.user, imap.password)
        client.select_folder(folder, readonly=True)
        last_uid = max(client.search(["ALL"]), default=0)
        client.idle()
        for raw in mails:
            started = time.monotonic()
            imap.append(raw, folder=folder)
            deadline = started + 30
            while True:
                # Wait for the server to speak, then let idle_done read in blocking mode:
                # idle_check reads a response split across TCP segments in two halves and
                # fails. Looked for as the watcher does, in imaplib's buffer as well as on the
                # socket: a response that came with IDLE's continuation is already read from
                # the socket, and select() alone waited 30 s for it (seen once on Dovecot).
                if not _server_spoke(client, timeout=1.0):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the bare IDLE client heard nothing in 30 s")
                    continue
                _, responses = client.idle_done()
                if any(isinstance(r, tuple) and r[1:2] == (b"EXISTS",) for r in responses):
                    break
                client.idle()
            uids = [uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid]
            client.fetch(uids, ["BODY.PEEK[]"])
            fetched = time.monotonic()
            latencies.append(fetched - started)
            last_uid = max(uids, default=last_uid)
            client.idle()
            time.sleep(max(0.0, fetched + gap - time.monotonic()))
        client.idle_done()
    finally:
        with contextlib.suppress(Exception):
            client.logout()
    return latencies


def print_against_floor(
    title: str, floor: list[float], ours: list[float], targets: tuple[float, float]
) -> None:
    """The floor, ours and the difference at p50 and p95, in milliseconds."""
    print(title)
    print(f"  {'':4} {'floor':>8} {'ours':>8} {'ours-floor':>11} {'target':>8}")
    for q, target in zip((50, 95), targets, strict=True):
        f, o = percentile(floor, q) * 1000, percentile(ours, q) * 1000
        print(f"  p{q:<3} {f:8.0f} {o:8.0f} {o - f:+11.0f} {'<' + format(target, '.0f'):>8}")
    print(f"  max  {max(floor) * 1000:8.0f} {max(ours) * 1000:8.0f}")


@contextmanager
def mail_server(kind: str, directory: Path) -> Iterator[MailboxOps]:
    """pymap, or Dovecot (the server production meets) when installed."""
    if kind == "dovecot":
        from tests.support.dovecot import DovecotServer, dovecot_binary  # why: test support, optional

        if dovecot_binary() is None:
            raise SystemExit("dovecot is not installed (apt-get install dovecot-imapd)")
        with DovecotServer() as server:
            yield server
        return
    from bot.sandbox.imap_server import PymapServer  # why: keeps this module's imports light

    with PymapServer(directory) as server:
        yield server


ON_CALL = "UADA"
URGENT_OUTAGE_RULE = '[[rule]]\nkind = "keyword"\npattern = "outage"\nurgent = true\n'


def urgency_rules(directory: Path) -> Path:
    """One rule: a mail saying "outage" is urgent, so it pages at night."""
    rules = directory / "urgency.toml"
    rules.write_text(URGENT_OUTAGE_RULE)
    return rules


def tuesday_night_in_rome() -> OffsetClock:
    """A Tuesday night in Rome; the clock runs on from there at real speed."""
    clock = OffsetClock()
    clock.jump_to(datetime(2026, 12, 1, 22, 0, tzinfo=ZoneInfo("Europe/Rome")).astimezone(UTC))
    return clock


def publish_rota(session: Session, bot: SupportBot, clock: Clock) -> None:
    """Ada alone on the roster and a published two-week plan, so she is the one on call."""
    store.sync_roster(session, [StaffMember(ON_CALL, "Ada")], clock.now())
    preview = store.preview_plan(
        session,
        bot.settings.calendar(),
        bot.settings.plan_config(),
        now=clock.now(),
        until=clock.now() + timedelta(weeks=2),
    )
    store.publish_plan(session, preview, by="UMGR", now=clock.now())


def wait_for_idle(bot: SupportBot) -> None:
    wait_until(lambda: bot.watcher is not None and bot.watcher.connected.is_set(), what="IMAP")
    time.sleep(0.5)  # let the watcher enter IDLE

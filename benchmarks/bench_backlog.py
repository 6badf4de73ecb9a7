"""Backlog throughput: N mails waiting at start-up, ingested to tickets, compared with a
bare imapclient FETCH of the same mails from the same server in the same run.

Slack delivery is excluded (the stand-in is down, posts wait in the outbox): this
measures IMAP → parse → tickets → outbox rows, committed.

    .venv/bin/python -m benchmarks.bench_backlog [count] [--server dovecot|pymap]

Dovecot is used when installed (the fair baseline: a production server), else pymap.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from sqlalchemy import func, select

from benchmarks._setup import fresh_sqlite, machine
from bot.sandbox.imap_server import PymapServer
from bot.sandbox.slack_api import SlackStandIn
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Ticket
from tests.support.dovecot import DovecotServer, dovecot_binary
from tests.support.harness import CHANNEL, bot_env, running_bot, wait_until
from tests.support.mail import customer_mail


def bare_fetch(imap: Any) -> float:
    started = time.monotonic()
    with IMAPClient(imap.host, port=imap.port, ssl=False) as client:
        client.login(imap.user, imap.password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        got = 0
        for start in range(0, len(uids), 200):
            got += len(client.fetch(uids[start : start + 200], ["BODY.PEEK[]"]))
    assert got == len(uids)
    return time.monotonic() - started


@contextmanager
def mailbox_with_backlog(tmp: Path, count: int, server: str) -> Iterator[Any]:
    mails = [customer_mail(n, subject=f"Backlog {n}") for n in range(count)]
    if server == "dovecot":
        with DovecotServer() as server:
            for start in range(0, count, 250):
                server.append_many(mails[start : start + 250])
            yield server
        return
    with PymapServer(tmp / "imap") as server:
        # Delivered straight into the maildir, as a delivery agent would during an outage.
        server.stop()
        server.write_backlog(mails)
        server.start()
        yield server


def main(count: int = 5000, server: str | None = None) -> None:
    if server is None:
        server = "dovecot" if dovecot_binary() is not None else "pymap"
    if server == "dovecot" and dovecot_binary() is None:
        raise SystemExit("dovecot is not installed (apt-get install dovecot-imapd)")
    with (
        fresh_sqlite() as (url, tmp),
        mailbox_with_backlog(tmp, count, server) as imap,
        SlackStandIn(channels=(CHANNEL,)) as slack,
    ):
        fetch_seconds = bare_fetch(imap)
        slack.set_down(True)
        factory = make_sessionmaker(make_engine(url))

        def tickets() -> int:
            with factory() as session:
                return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)

        env = bot_env(slack_url=slack.base_url, imap=imap, database_url=url)
        started = time.monotonic()
        with running_bot(env):
            wait_until(lambda: tickets() >= count, timeout=1800, interval=0.2, what="the backlog")
            ingest_seconds = time.monotonic() - started
    name = type(imap).__name__.removesuffix("Server")
    print(f"backlog of {count} mails at start-up, {name}, SQLite ({machine()})")
    print(f"  bare imapclient FETCH   {fetch_seconds:7.2f} s  ({count / fetch_seconds:7.0f} mails/s)")
    print(f"  supportbot to tickets   {ingest_seconds:7.2f} s  ({count / ingest_seconds:7.0f} mails/s)")
    print(f"  ratio (fetch / ingest)  {fetch_seconds / ingest_seconds:7.2f}     (target >= 0.5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Backlog ingestion against a bare IMAP FETCH.")
    parser.add_argument("count", type=int, nargs="?", default=5000)
    parser.add_argument("--server", choices=("dovecot", "pymap"), help="default: dovecot when installed")
    arguments = parser.parse_args()
    main(arguments.count, arguments.server)

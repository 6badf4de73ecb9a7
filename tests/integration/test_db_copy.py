"""`supportbot db copy --to postgresql://…`: a SQLite database holding every kind of row
arrives whole in an empty PostgreSQL database, which the bot then carries on with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Connection, Table, func, select
from sqlalchemy.types import TypeDecorator

from bot.slack.paging import step_effects
from bot.storage.db import make_engine, make_sessionmaker, transaction, upgrade
from bot.storage.models import Base, Ticket
from bot.tickets.ingest import ingest_email
from rota import paging
from tests.support.databases import head_revision
from tests.support.harness import CHANNEL
from tests.support.mail import customer_mail
from tests.support.night_rota import NIGHT, rota_with_ada_on_call, settings_for, urgent_ticket
from tests.support.private_postgres import PrivatePostgres, postgres_bin_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with PrivatePostgres() as cluster:
        yield cluster


def supportbot(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", *args], env=env, capture_output=True, text=True, timeout=120
    )


def filled_sqlite(path: Path) -> str:
    """A database the bot has used: mail, follow-ups, a rota, a page; then one made-up row
    in any table nothing above wrote to, so every table holds something."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    settings = settings_for(url)
    with transaction(factory) as session:
        for n in range(5):
            ingest_email(session, customer_mail(n), mailbox="box", channel=CHANNEL, now=NIGHT, uid=n + 1)
    rota_with_ada_on_call(factory, settings)
    ticket_id = urgent_ticket(factory, n=50)
    with transaction(factory) as session:
        step = paging.start_page(session, ticket_id=ticket_id, now=NIGHT, settings=settings)
        assert step is not None
        step_effects(session, settings, step, NIGHT)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if conn.scalar(select(func.count()).select_from(table)) == 0:
                conn.execute(table.insert().values(made_up_row(conn, table)))
    engine.dispose()
    return url


def made_up_row(conn: Connection, table: Table) -> dict[str, Any]:
    row: dict[str, Any] = {}
    single_key = len(table.primary_key.columns) == 1
    for column in table.columns:
        if column.foreign_keys:
            parent = next(iter(column.foreign_keys)).column
            row[column.name] = conn.scalar(select(func.min(parent)))
            continue
        if column.primary_key and single_key and _python_type(column) is int:
            continue  # the database numbers it
        kind = _python_type(column)
        length = getattr(column.type, "length", None) or 40
        row[column.name] = {
            bool: True,
            int: 7,
            float: 2.5,
            Decimal: Decimal("2.50"),
            str: f"{column.name}-sample"[:length],
            datetime: NIGHT,
            date: NIGHT.date(),
            dict: {"sample": [1, "two"]},
            list: ["sample"],
            bytes: b"\x00sample",
            timedelta: timedelta(minutes=5),
        }[kind]
    return row


def _python_type(column: Any) -> type:
    kind_of = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
    if isinstance(kind_of, JSON):
        return dict
    kind = kind_of.python_type
    return bool if kind is bool else kind


def rows(url: str, table: Table) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            order = list(table.primary_key.columns) or list(table.columns)
            return [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]
    finally:
        engine.dispose()


def test_copy_moves_every_table_to_postgresql_and_the_bot_carries_on(tmp_path, postgres):
    source = filled_sqlite(tmp_path / "bot.sqlite3")
    for table in Base.metadata.sorted_tables:
        assert rows(source, table), f"the source holds no {table.name} row"

    result = supportbot(source, "copy", "--to", postgres.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("the counts match")

    for table in Base.metadata.sorted_tables:
        assert rows(postgres.url, table) == rows(source, table), table.name
    current = supportbot(postgres.url, "current")
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip().endswith(f"at revision {head_revision()}")

    # Sequences were set past the copied ids: the next ticket gets the next id.
    highest = max(r["id"] for r in rows(source, Ticket.__table__))
    factory = make_sessionmaker(make_engine(postgres.url))
    with transaction(factory) as session:
        made = ingest_email(session, customer_mail(900), mailbox="box", channel=CHANNEL, now=NIGHT)
    assert made.ticket_id == highest + 1

    # A target holding data is refused, and left as it was.
    again = supportbot(source, "copy", "--to", postgres.url)
    assert again.returncode == 2
    assert again.stderr.strip() == (
        "supportbot: db copy: the target database holds data; copy only into an empty database"
    )

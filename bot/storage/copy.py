"""`supportbot db copy --to postgresql://…`: move everything from SQLite to PostgreSQL.

The target gets the schema from our migrations (so Alembic knows where it stands), then
every table of the models' metadata, parents before children, in batches, in one
transaction: a copy that fails leaves the target as empty as it was. Sequences are set
past the highest id copied, so the next ticket does not collide with a copied one, and
the row counts of both sides are compared at the end.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, Integer, Table, func, select, text
from sqlalchemy.engine import make_url

from bot.storage.backup import is_empty
from bot.storage.db import alembic_config, make_engine, upgrade
from bot.storage.models import Base, Counter

BATCH_ROWS = 1000


class CopyError(Exception):
    """A copy that cannot be done, or that did not come out equal; one line."""


def copy_database(
    source_url: str, target_url: str, *, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every row from `source_url` to the empty PostgreSQL database `target_url`.

    Returns the row count of each table (equal on both sides, or CopyError is raised).
    """
    if make_url(target_url).get_backend_name() != "postgresql":
        raise CopyError("--to must be a postgresql:// URL")
    if make_url(source_url) == make_url(target_url):
        raise CopyError("--to names the configured database itself")
    source = make_engine(source_url)
    target = make_engine(target_url)
    try:
        _check_source_current(source)
        if not is_empty(target):
            raise CopyError("the target database holds data; copy only into an empty database")
        upgrade(target_url)
        with source.connect() as reader, target.begin() as writer:
            # The first migration seeds the ticket counter; the source's own value replaces it.
            writer.execute(Counter.__table__.delete())
            for table in Base.metadata.sorted_tables:
                copied = _copy_table(reader, writer, table)
                if progress is not None:
                    progress(table.name, copied)
            for table in Base.metadata.sorted_tables:
                _advance_sequence(writer, table)
        return _compare_counts(source, target)
    finally:
        source.dispose()
        target.dispose()


def _check_source_current(source: Engine) -> None:
    from alembic.runtime.migration import MigrationContext  # why: heavy, as in bot/storage/db.py
    from alembic.script import ScriptDirectory  # why: the same

    with source.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(str(source.url))).get_current_head()
    if current != head:
        raise CopyError(
            f"the configured database is at revision {current}, not {head}: run `supportbot db upgrade` first"
        )


def _copy_table(reader: Connection, writer: Connection, table: Table) -> int:
    order = list(table.primary_key.columns) or list(table.columns)
    rows = reader.execution_options(yield_per=BATCH_ROWS).execute(select(table).order_by(*order))
    copied = 0
    for batch in rows.partitions(BATCH_ROWS):
        writer.execute(table.insert(), [dict(row._mapping) for row in batch])
        copied += len(batch)
    return copied


def _advance_sequence(writer: Connection, table: Table) -> None:
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, Integer):
        return
    column = keys[0].name
    sequence = writer.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column})
    if sequence is None:
        return
    highest = writer.scalar(select(func.max(table.c[column]))) or 0
    # is_called false: the next id handed out is highest + 1.
    writer.execute(text("SELECT setval(:s, :v, false)"), {"s": sequence, "v": highest + 1})


def _compare_counts(source: Engine, target: Engine) -> dict[str, int]:
    counts: dict[str, int] = {}
    differing: list[str] = []
    with source.connect() as left, target.connect() as right:
        for table in Base.metadata.sorted_tables:
            ours = int(left.scalar(select(func.count()).select_from(table)) or 0)
            theirs = int(right.scalar(select(func.count()).select_from(table)) or 0)
            counts[table.name] = ours
            if ours != theirs:
                differing.append(f"{table.name} {ours} → {theirs}")
    if differing:
        raise CopyError("row counts differ after the copy: " + ", ".join(differing))
    return counts

"""Looking for a customer everywhere: every table the database has (read from the database
itself, so a table added later is scanned too), every outbox payload among them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in "[{":
        try:  # JSON stored as text (SQLite) escapes non-ASCII letters
            return value + json.dumps(json.loads(value), ensure_ascii=False)
        except ValueError:
            return value
    return str(value)


def find_anywhere(engine: Engine, needles: Iterable[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for every cell holding one of `needles` (case-insensitive)."""
    wanted = [n.lower() for n in needles if n]
    found: list[tuple[str, str, str]] = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            if table == "alembic_version":
                continue
            rows = connection.execute(text(f'SELECT * FROM "{table}"'))
            columns = list(rows.keys())
            for row in rows:
                for column, value in zip(columns, row, strict=True):
                    cell = _as_text(value).lower()
                    found.extend((table, column, n) for n in wanted if n in cell)
    return found


def tables(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(inspect(connection).get_table_names())

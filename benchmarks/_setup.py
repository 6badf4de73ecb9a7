"""Shared set-up for the benchmarks: the same stand-ins and database the tests use."""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.storage.db import upgrade


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

"""How long customers' data is kept, and how an erasure reaches the mailbox."""

from __future__ import annotations

from dataclasses import dataclass

from bot.env_reader import EnvReader


@dataclass(frozen=True)
class PrivacySettings:
    retention_days: int | None = None  # None: keep forever
    # Keep the anonymous figures of erased tickets (times, tags, template use, survey
    # score without its comment), so the stats of past periods do not change.
    keep_stats: bool = True
    # Also delete the customer's mail from the mailbox (flagged only, by default).
    erase_from_mailbox: bool = False
    # Tickets erased per retention batch: one short write transaction each.
    retention_batch: int = 100


def load_privacy_settings(r: EnvReader) -> PrivacySettings:
    days = r.raw("RETENTION_DAYS")
    return PrivacySettings(
        retention_days=None if days is None else r.integer("RETENTION_DAYS", 0, 1, 36500),
        keep_stats=r.boolean("RETENTION_KEEP_STATS", True),
        erase_from_mailbox=r.boolean("ERASE_FROM_MAILBOX", False),
        retention_batch=r.integer("RETENTION_BATCH", 100, 1, 5000),
    )

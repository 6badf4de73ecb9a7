"""Calendars from outside: rota imports awaiting Publish, time-off feeds, feed-sourced absences.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rota_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("shifts", sa.JSON(), nullable=False),
        sa.Column("unmatched", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "time_off_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("etag", sa.String(length=300), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("last_read_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("url_hash", "owner", name="uq_time_off_feeds_url_owner"),
    )
    op.create_index("ix_time_off_feeds_owner", "time_off_feeds", ["owner"])
    op.create_table(
        "feed_absences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=500), nullable=False),
        sa.Column("time_off_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["feed_id"], ["time_off_feeds.id"]),
        sa.ForeignKeyConstraint(["time_off_id"], ["time_off.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feed_id", "event_key", name="uq_feed_absences_event"),
    )
    op.create_index("ix_feed_absences_feed_id", "feed_absences", ["feed_id"])
    op.create_index("ix_feed_absences_time_off_id", "feed_absences", ["time_off_id"])


def downgrade() -> None:
    op.drop_index("ix_feed_absences_time_off_id", table_name="feed_absences")
    op.drop_index("ix_feed_absences_feed_id", table_name="feed_absences")
    op.drop_table("feed_absences")
    op.drop_index("ix_time_off_feeds_owner", table_name="time_off_feeds")
    op.drop_table("time_off_feeds")
    op.drop_table("rota_imports")

"""Slack request signatures already accepted, so a captured request cannot be replayed.

Slack's own check (the timestamp within five minutes) leaves a five-minute window in which
the very same signed request would be accepted again, on any replica: the table is shared,
its primary key makes the second insert fail, and rows older than the window are purged.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_signatures",
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("signature"),
    )
    op.create_index("ix_seen_signatures_seen_at", "seen_signatures", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_signatures_seen_at", table_name="seen_signatures")
    op.drop_table("seen_signatures")

"""Erasures of customers' data (GDPR), erased tickets, and the tombstones of erased mail.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=True),
        sa.Column("by", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_erasures_address_hash", "erasures", ["address_hash"])
    op.create_table(
        "erased_tickets",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("erasure_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"]),
        sa.ForeignKeyConstraint(["erasure_id"], ["erasures.id"]),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_index("ix_erased_tickets_erasure_id", "erased_tickets", ["erasure_id"])
    op.create_table(
        "erasure_tombstones",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("erasure_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["erasure_id"], ["erasures.id"]),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_erasure_tombstones_erasure_id", "erasure_tombstones", ["erasure_id"])


def downgrade() -> None:
    op.drop_index("ix_erasure_tombstones_erasure_id", table_name="erasure_tombstones")
    op.drop_table("erasure_tombstones")
    op.drop_index("ix_erased_tickets_erasure_id", table_name="erased_tickets")
    op.drop_table("erased_tickets")
    op.drop_index("ix_erasures_address_hash", table_name="erasures")
    op.drop_table("erasures")

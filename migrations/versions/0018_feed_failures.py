"""Time-off feeds remember their last good read, since when they fail, and whether their
owner was told.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("time_off_feeds") as batch:
        batch.add_column(sa.Column("failing_since", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("failure_told_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_good_at", sa.DateTime(), nullable=True))
    # A feed whose last read went well was read well then: not news as a first failure.
    op.execute(
        "UPDATE time_off_feeds SET last_good_at = last_read_at "
        "WHERE last_error IS NULL AND last_read_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("time_off_feeds") as batch:
        batch.drop_column("last_good_at")
        batch.drop_column("failure_told_at")
        batch.drop_column("failing_since")

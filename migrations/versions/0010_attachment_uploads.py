"""The Slack file each customer attachment was uploaded as, into its ticket's thread.

Set when the upload is recorded, so a retry after a crash (which looks for a file the
bot already shared with the same name and size) never adopts a file that belongs to
another attachment.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("slack_file_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("slack_file_id")
